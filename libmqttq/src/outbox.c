// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Crash-safe outbox: append-only log of accepted QoS 1/2 publishes, retired on completion, replayed with mqc_restore. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "../core/mqc_int.h"

#define OB_MAGIC 0x4251514du /* "MQQB" */
enum { OB_ADD = 1, OB_PID = 2, OB_DONE = 3, OB_REL = 4 };

struct ob_hdr {
	u32 magic;
	u8 type, qos;
	u16 pid;
	u32 len;		/* data bytes after the header (the encoded PUBLISH for ADD) */
	u64 seq;
	u64 token;
};

static u32 crc_table[256];

static void crc_init(void)
{
	for (u32 i = 0; i < 256; i++) {
		u32 c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static u32 crc32_update(u32 c, const u8 *p, size_t n)
{
	c = ~c;
	while (n--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

static int ob_append(struct mqttq *q, u8 type, u8 qos, u16 pid, u64 seq, u64 token,
		     const u8 *data, u32 len)
{
	struct ob_hdr h = { OB_MAGIC, type, qos, pid, len, seq, token };
	size_t need = q->ob_len + sizeof(h) + len + 4;
	u32 crc;

	if (need > q->ob_cap) {
		size_t cap = q->ob_cap ? q->ob_cap * 2 : 65536;
		u8 *n;

		while (cap < need)
			cap *= 2;
		n = realloc(q->ob_buf, cap);
		if (!n)
			return -ENOMEM;
		q->ob_buf = n;
		q->ob_cap = cap;
	}
	crc = crc32_update(0, (const u8 *)&h, sizeof(h));
	crc = crc32_update(crc, data, len);
	memcpy(q->ob_buf + q->ob_len, &h, sizeof(h));
	if (len)
		memcpy(q->ob_buf + q->ob_len + sizeof(h), data, len);
	memcpy(q->ob_buf + q->ob_len + sizeof(h) + len, &crc, 4);
	q->ob_len = need;
	return 0;
}

/* Writes what is buffered; with force (or the fsync policy due), makes it durable. */
int mq_outbox_sync(struct mqttq *q, bool force)
{
	u64 now;

	if (q->ob_fd < 0)
		return 0;
	while (q->ob_len) {
		ssize_t w = write(q->ob_fd, q->ob_buf, q->ob_len);

		if (w < 0)
			return mq_err(q, -errno, "outbox write: %s", strerror(errno));
		memmove(q->ob_buf, q->ob_buf + w, q->ob_len - w);
		q->ob_len -= w;
		q->ob_size += w;
		q->ob_dirty = true;
	}
	if (!q->ob_dirty)
		return 0;
	now = mq_now_ms();
	if (force || !q->o.outbox_fsync || now - q->ob_synced >= (u64)q->o.outbox_fsync) {
		if (fdatasync(q->ob_fd))
			return mq_err(q, -errno, "outbox fdatasync: %s", strerror(errno));
		q->ob_dirty = false;
		q->ob_synced = now;
	}
	return 0;
}

int mq_outbox_add(struct mqttq *q, struct mq_msg *mm)
{
	int r;

	if (q->ob_fd < 0 || !mm->m.qos)
		return 0;
	mm->wal_seq = ++q->ob_seq;
	mm->wal_rel = 0;
	r = ob_append(q, OB_ADD, mm->m.qos, 0, mm->wal_seq, mm->m.token, mm->m.buf, mm->m.len);
	if (!r)
		q->ob_live++;
	/* policy 0: accepted means on disk */
	if (!r && !q->o.outbox_fsync)
		r = mq_outbox_sync(q, true);
	if (r)
		mm->wal_seq = 0;
	return r;
}

void mq_outbox_pid(struct mqttq *q, struct mq_msg *mm)
{
	if (q->ob_fd >= 0 && mm->wal_seq)
		ob_append(q, OB_PID, mm->m.qos, mm->m.pid, mm->wal_seq, 0, NULL, 0);
}

/*
 * A QoS 2 flow reached PUBREL. The record must be in the file before the
 * PUBREL leaves (the tx flush syncs first): once the server has PUBCOMPed,
 * it has forgotten the identifier, and a PUBLISH resent after a restart
 * would be a new message delivered twice. A PUBREL resent after a restart
 * is harmless whatever the server remembers.
 */
void mq_outbox_rel(struct mqttq *q, u16 pid)
{
	struct mqc_msg *m;
	struct mq_msg *mm;

	if (q->ob_fd < 0 || !pid || !q->s.nslots)
		return;
	m = q->s.slots[pid % q->s.nslots];
	if (!m || m->pid != pid || m->qos != 2)
		return;
	mm = (struct mq_msg *)((char *)m - offsetof(struct mq_msg, m));
	mq_outbox_rel_msg(q, mm);
}

/* The same for a QoS 2 flow the offload engine reported at PUBREC (it holds the PUBREL). */
void mq_outbox_rel_msg(struct mqttq *q, struct mq_msg *mm)
{
	if (q->ob_fd < 0 || !mm->wal_seq || mm->wal_rel)
		return;
	if (!ob_append(q, OB_REL, 2, mm->m.pid, mm->wal_seq, 0, NULL, 0))
		mm->wal_rel = 1;
}

static int msg_cmp(const void *a, const void *b)
{
	const struct mq_msg *x = *(struct mq_msg *const *)a, *y = *(struct mq_msg *const *)b;

	return x->wal_seq < y->wal_seq ? -1 : x->wal_seq > y->wal_seq;
}

/* Rewrites the log with only the live messages, atomically (write, fsync, rename). */
static int ob_compact(struct mqttq *q)
{
	struct mq_msg **live;
	char tmp[4096 + 8];
	u32 n = 0;
	int fd, r = 0;

	live = calloc(q->nmsgs, sizeof(*live));
	if (!live)
		return -ENOMEM;
	for (u32 i = 0; i < q->nmsgs; i++)
		if (q->msgs[i].buf && q->msgs[i].wal_seq)
			live[n++] = &q->msgs[i];
	qsort(live, n, sizeof(*live), msg_cmp);
	q->ob_len = 0;
	for (u32 i = 0; i < n && !r; i++) {
		struct mq_msg *mm = live[i];
		/* the offload engine keeps an identifier across sockets while queued */
		bool has_pid = mm->m.pid && (mm->in_core || q->engine == MQTTQ_ENGINE_OFFLOAD);

		r = ob_append(q, OB_ADD, mm->m.qos, 0, mm->wal_seq, mm->m.token, mm->m.buf,
			      mm->m.len);
		if (!r && has_pid)
			r = ob_append(q, OB_PID, mm->m.qos, mm->m.pid, mm->wal_seq, 0, NULL, 0);
		if (!r && has_pid && mm->wal_rel)
			r = ob_append(q, OB_REL, 2, mm->m.pid, mm->wal_seq, 0, NULL, 0);
	}
	free(live);
	snprintf(tmp, sizeof(tmp), "%s.tmp", q->ob_path);
	fd = r ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		q->ob_len = 0;
		return r ? r : mq_err(q, -errno, "outbox compaction: %s", strerror(errno));
	}
	if (write(fd, q->ob_buf, q->ob_len) != (ssize_t)q->ob_len || fdatasync(fd) ||
	    rename(tmp, q->ob_path)) {
		r = mq_err(q, -errno, "outbox compaction: %s", strerror(errno));
		close(fd);
		unlink(tmp);
		q->ob_len = 0;
		return r;
	}
	close(q->ob_fd);
	q->ob_fd = fd;
	q->ob_size = q->ob_len;
	q->ob_len = 0;
	q->ob_dead = 0;
	q->ob_live = n;
	q->ob_dirty = false;
	return 0;
}

void mq_outbox_done(struct mqttq *q, struct mq_msg *mm)
{
	if (q->ob_fd < 0 || !mm->wal_seq)
		return;
	ob_append(q, OB_DONE, mm->m.qos, 0, mm->wal_seq, 0, NULL, 0);
	mm->wal_seq = 0;
	q->ob_live--;
	q->ob_dead++;
	/* compact once retired records dominate the log */
	if (q->ob_dead > 1024 && q->ob_dead > 4 * q->ob_live) {
		mq_outbox_sync(q, false);
		ob_compact(q);
	}
}

struct ob_live {
	struct ob_hdr h;	/* a copy: records are packed, so headers are unaligned */
	const u8 *data;
	u16 pid;
	bool done;
	bool rel;
};

/*
 * Replays the log: every ADD without DONE comes back, in order; one with a
 * PID record is restored into the session (resent with DUP and its
 * identifier on a resumed session), one without goes to the queue. A torn
 * or corrupt tail is cut off with a warning and counted.
 */
int mq_outbox_open(struct mqttq *q)
{
	struct ob_live *lv = NULL;
	size_t nlv = 0, off = 0;
	struct stat sb;
	u8 *file = NULL;
	int r = 0;

	crc_init();
	q->ob_path = strdup(q->ob_path_arg);
	if (!q->ob_path)
		return -ENOMEM;
	q->ob_fd = open(q->ob_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (q->ob_fd < 0)
		return mq_err(NULL, -errno, "outbox %s: %s", q->ob_path, strerror(errno));
	if (fstat(q->ob_fd, &sb))
		return mq_err(NULL, -errno, "outbox %s: %s", q->ob_path, strerror(errno));
	if (sb.st_size) {
		file = malloc(sb.st_size);
		lv = calloc(sb.st_size / sizeof(struct ob_hdr) + 1, sizeof(*lv));
		if (!file || !lv || pread(q->ob_fd, file, sb.st_size, 0) != sb.st_size) {
			r = file && lv ? mq_err(NULL, -EIO, "outbox %s: short read", q->ob_path) :
					 -ENOMEM;
			goto out_free;
		}
	}
	while (off < (size_t)sb.st_size) {
		struct ob_hdr hv;
		const struct ob_hdr *h = &hv;
		size_t left = sb.st_size - off;
		u32 crc, want;

		if (left < sizeof(*h) + 4)
			goto torn;
		memcpy(&hv, file + off, sizeof(hv));
		if (h->magic != OB_MAGIC || h->len > left - sizeof(*h) - 4)
			goto torn;
		crc = crc32_update(0, file + off, sizeof(*h) + h->len);
		memcpy(&want, file + off + sizeof(*h) + h->len, 4);
		if (crc != want)
			goto torn;
		if (h->type == OB_ADD && h->len && (h->qos == 1 || h->qos == 2)) {
			lv[nlv].h = hv;
			lv[nlv].data = file + off + sizeof(*h);
			nlv++;
		} else if (h->type == OB_PID || h->type == OB_DONE || h->type == OB_REL) {
			for (size_t i = nlv; i-- > 0;)
				if (lv[i].h.seq == h->seq) {
					if (h->type == OB_DONE)
						lv[i].done = true;
					else if (h->type == OB_REL)
						lv[i].rel = lv[i].pid == h->pid;
					else
						lv[i].pid = h->pid;
					break;
				}
		}
		if (h->seq > q->ob_seq)
			q->ob_seq = h->seq;
		off += sizeof(*h) + h->len + 4;
		continue;
torn:
		q->st.outbox_corrupt++;
		mq_log(q, MQTTQ_LOG_WARN, "outbox %s: torn or corrupt record at byte %zu, %zu bytes "
			  "dropped", q->ob_path, off, left);
		if (ftruncate(q->ob_fd, off))
			r = mq_err(NULL, -errno, "outbox truncate: %s", strerror(errno));
		break;
	}
	for (size_t i = 0; i < nlv && !r; i++) {
		const struct ob_hdr *h = &lv[i].h;
		struct mq_msg *mm;
		u32 vw, tlen;

		if (lv[i].done)
			continue;
		mm = mq_msg_get(q, h->len);
		if (!mm) {
			r = mq_err(NULL, -ENOBUFS, "outbox holds more than the queue bounds");
			break;
		}
		memcpy(mm->buf, lv[i].data, h->len);
		memset(&mm->m, 0, sizeof(mm->m));
		mm->m.buf = mm->buf;
		mm->m.len = h->len;
		mm->m.qos = h->qos;
		mm->m.token = h->token;
		/* a record passed its CRC, but its PUBLISH is checked before any use */
		vw = 0;
		if (h->len < 2 || (int)(vw = (u32)mqc_varint_get(mm->buf + 1, h->len - 1, &tlen)) <= 0 ||
		    1 + vw + 2 > h->len ||
		    1 + vw + 2 + (tlen = (u32)mm->buf[1 + vw] << 8 | mm->buf[2 + vw]) + 2 > h->len) {
			q->st.outbox_corrupt++;
			mq_log(q, MQTTQ_LOG_WARN, "outbox %s: record %llu holds no valid PUBLISH, "
				  "skipped", q->ob_path, (unsigned long long)h->seq);
			mq_msg_put(q, mm);
			continue;
		}
		mm->m.pid_off = 1 + vw + 2 + tlen;
		/* the offload engine hands topic, payload and properties over as an iovec */
		mm->topic_off = 1 + vw + 2;
		mm->topic_len = tlen;
		mm->props_off = mm->props_len = 0;
		mm->payload_off = mm->m.pid_off + 2;
		if (q->o.version == MQC_V5) {
			u32 plen = 0;
			int w = mqc_varint_get(mm->buf + mm->payload_off, h->len - mm->payload_off,
					       &plen);

			if (w <= 0 || plen > h->len - mm->payload_off - (u32)w) {
				q->st.outbox_corrupt++;
				mq_log(q, MQTTQ_LOG_WARN, "outbox %s: record %llu holds no valid "
					  "PUBLISH, skipped", q->ob_path, (unsigned long long)h->seq);
				mq_msg_put(q, mm);
				continue;
			}
			mm->props_off = mm->payload_off + (u32)w;
			mm->props_len = plen;
			mm->payload_off = mm->props_off + plen;
		}
		mm->payload_len = h->len - mm->payload_off;
		mm->aliasable = 0;
		mm->wal_seq = h->seq;
		q->ob_live++;
		q->ob_restored++;
		if (lv[i].pid) {
			mm->m.pid = lv[i].pid;
			mm->m.state = h->qos == 1 ? MQC_ST_WAIT_ACK :
				      lv[i].rel ? MQC_ST_WAIT_COMP : MQC_ST_WAIT_REC;
			mm->wal_rel = lv[i].rel;
			if (!mqc_restore(&q->s, &mm->m)) {
				mm->in_core = 1;
				q->st.inflight++;
				continue;
			}
			mm->m.pid = 0;
			mm->m.state = 0;
			mm->wal_rel = 0;
		}
		q->st.published++;
		mq_pend_push(q, mm);
	}
	if (!r && nlv)
		r = ob_compact(q);
	else
		q->ob_size = off;
out_free:
	free(file);
	free(lv);
	return r;
}

void mq_outbox_close(struct mqttq *q)
{
	if (q->ob_fd >= 0) {
		mq_outbox_sync(q, true);
		close(q->ob_fd);
	}
	q->ob_fd = -1;
	free(q->ob_buf);
	free(q->ob_path);
	q->ob_buf = NULL;
	q->ob_path = NULL;
}
