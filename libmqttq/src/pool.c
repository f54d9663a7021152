// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Preallocated message descriptors and size-classed buffers, so steady-state publishing never calls malloc. */
#include <stdlib.h>

#include "internal.h"

/* Buffers keep their class in a header so freeing needs no lookup. */
struct mq_bufhdr {
	void *next;
	u64 cls;
};

static unsigned int size_class(u32 size)
{
	unsigned int c = 0;

	while (c < MQ_NCLASS - 1 && (64u << c) < size)
		c++;
	return c;
}

int mq_pool_init(struct mqttq *q)
{
	u32 i;

	q->msgs = calloc(q->nmsgs, sizeof(*q->msgs));
	if (!q->msgs)
		return -ENOMEM;
	for (i = 0; i < q->nmsgs; i++) {
		q->msgs[i].next = q->free_msgs;
		q->free_msgs = &q->msgs[i];
	}
	return 0;
}

void mq_pool_fini(struct mqttq *q)
{
	unsigned int c;

	for (c = 0; c < MQ_NCLASS; c++) {
		while (q->free_bufs[c]) {
			struct mq_bufhdr *h = q->free_bufs[c];

			q->free_bufs[c] = h->next;
			free(h);
		}
	}
	for (u32 i = 0; q->msgs && i < q->nmsgs; i++)
		if (q->msgs[i].buf)
			free((struct mq_bufhdr *)q->msgs[i].buf - 1);
	free(q->msgs);
	q->msgs = NULL;
}

struct mq_msg *mq_msg_get(struct mqttq *q, u32 size)
{
	struct mq_msg *mm = q->free_msgs;
	unsigned int c = size_class(size);
	struct mq_bufhdr *h;

	if (!mm || (64ull << c) < size)
		return NULL;
	h = q->free_bufs[c];
	if (h) {
		q->free_bufs[c] = h->next;
	} else {
		h = malloc(sizeof(*h) + (64u << c));
		if (!h)
			return NULL;
		q->mem_bytes += 64u << c;
	}
	h->cls = c;
	q->free_msgs = mm->next;
	mm->next = NULL;
	mm->buf = (u8 *)(h + 1);
	mm->cap = 64u << c;
	mm->cls = c;
	mm->sync = 0;
	mm->in_core = 0;
	return mm;
}

void mq_msg_put(struct mqttq *q, struct mq_msg *mm)
{
	struct mq_bufhdr *h = (struct mq_bufhdr *)mm->buf - 1;

	/* Cached buffers are capped so a burst of large messages does not pin memory. */
	if (q->mem_bytes > q->mem_cap) {
		q->mem_bytes -= 64u << h->cls;
		free(h);
	} else {
		h->next = q->free_bufs[h->cls];
		q->free_bufs[h->cls] = h;
	}
	mm->buf = NULL;
	mm->next = q->free_msgs;
	q->free_msgs = mm;
}
