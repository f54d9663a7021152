/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Loader and manager of the eBPF topic filter: filter set, generations, test runs, sockmap. */
#ifndef MQTTQ_MQF_H
#define MQTTQ_MQF_H

#include <stddef.h>
#include <stdint.h>

#include "mqf_abi.h"
#include "../src/match.h"

struct mqf_mgr;

/*
 * Loads the program and creates its maps. @max_nodes bounds the trie edges of
 * both generations together (0: 131072, enough for 10,000 filters of ~6
 * levels). Returns -EPERM without CAP_BPF, or the load error; the caller then
 * matches with struct mqf_set alone.
 */
MQF_HIDDEN int mqf_open(struct mqf_mgr **out, unsigned int max_nodes);
MQF_HIDDEN void mqf_close(struct mqf_mgr *m);

/*
 * Stage a change; nothing reaches the program before mqf_commit().
 * mqf_add: -EINVAL for an invalid filter or id, -EEXIST for an id in use.
 * mqf_remove: -ENOENT for an unknown id.
 */
MQF_HIDDEN int mqf_add(struct mqf_mgr *m, const char *filter, size_t len, uint32_t id);
MQF_HIDDEN int mqf_remove(struct mqf_mgr *m, uint32_t id);

/*
 * Writes the staged set into the idle generation, makes it the active one and
 * waits until no run can still be reading the old one. A run sees the whole
 * old set or the whole new one. -ENOSPC when the trie would not fit
 * @max_nodes; the active set is then unchanged. Not thread-safe against
 * mqf_add/mqf_remove/mqf_commit; runs may go on in any thread meanwhile.
 */
MQF_HIDDEN int mqf_commit(struct mqf_mgr *m);

/* The socket-filter program, for the module's socket option. */
MQF_HIDDEN int mqf_prog_fd(const struct mqf_mgr *m);

/*
 * Runs the program once (or @repeat times) on one whole MQTT packet by
 * BPF_PROG_TEST_RUN, any size (a big PUBLISH is run as its fixed header and
 * topic). *@ret is a filter id, MQF_NO_MATCH or MQF_UNDECIDED;
 * *@ns (may be NULL) the kernel's mean time per run.
 */
MQF_HIDDEN int mqf_run(struct mqf_mgr *m, const void *pkt, size_t len, uint32_t *ret);
MQF_HIDDEN int mqf_run_repeat(struct mqf_mgr *m, const void *pkt, size_t len, unsigned int repeat,
			      uint32_t *ret, uint32_t *ns);

/* The reference answer on the committed set: what to do with MQF_UNDECIDED. */
MQF_HIDDEN uint32_t mqf_match(struct mqf_mgr *m, const char *topic, size_t len);

/*
 * Puts a connected TCP socket into the sockmap. The kernel follows the MQTT
 * framing of what it receives and drops each received segment made only of
 * whole QoS 0 PUBLISHes that no committed filter matches; everything else
 * (QoS 1/2, other packets, segments mixing packets to keep and to drop or
 * holding part of a packet, undecided topics) reaches recv() unchanged, so
 * userspace must still match what it receives. Attach before the first byte arrives (right after
 * connect()) or when no received byte is unread: the framing starts there.
 * -ENOSPC past MQF_SOCK_MAX sockets. Closing an attached socket detaches it
 * (its slot is reclaimed when needed); mqf_sock_detach() does so at once.
 */
MQF_HIDDEN int mqf_sock_attach(struct mqf_mgr *m, int sockfd);
MQF_HIDDEN int mqf_sock_detach(struct mqf_mgr *m, int sockfd);

struct mqf_stats {
	size_t filters; /* committed */
	size_t nodes; /* trie entries of the active generation */
	size_t user_only; /* committed filters too deep for the program (see docs/filter.md) */
};

MQF_HIDDEN void mqf_get_stats(struct mqf_mgr *m, struct mqf_stats *st);

#endif
