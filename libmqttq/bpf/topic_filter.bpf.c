// SPDX-License-Identifier: GPL-2.0
/* eBPF MQTT topic filter: returns the lowest id of the local filters matching a PUBLISH's topic. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <stdbool.h>

#include "mqf_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* Both trie generations; sized by the loader before load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mqf_key);
	__type(value, struct mqf_node);
} mqf_nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mqf_active);
} mqf_active SEC(".maps");

/* Per-run working memory, one slot per nesting depth (see mqf_nest). */
struct scratch {
	__u8 topic[MQF_TOPIC_MAX];
	__u64 h1[MQF_LEVELS_MAX];
	__u32 h2[MQF_LEVELS_MAX];
	__u16 len[MQF_LEVELS_MAX];
	__u32 qnode[MQF_QUEUE_MAX];
	__u8 qlevel[MQF_QUEUE_MAX];
	__u8 qflags[MQF_QUEUE_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MQF_NEST_MAX);
	__type(key, __u32);
	__type(value, struct scratch);
} mqf_scratch SEC(".maps");

/*
 * A softirq run (sockmap verdict, the module's receive path) can interrupt a
 * process-context run (test run) on the same CPU; each takes its own scratch
 * slot by an atomic per-CPU counter instead of sharing one.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} mqf_nest SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, MQF_SOCK_MAX);
	__type(key, __u32);
	__type(value, __u64); /* 8 bytes: a lookup from userspace then returns the cookie */
} mqf_sockmap SEC(".maps");

/* State of one trie walk, on the stack and handed to the bpf_loop callback. */
struct walk {
	__u32 slot;
	__u32 gen;
	__u32 nlev;
	__u32 head;
	__u32 tail;
	__u32 best;
	__u32 verdict; /* 0 while the walk can still decide */
	__u32 dollar;
};

static __always_inline void take(struct walk *w, __u32 id)
{
	if (id && (!w->best || id < w->best))
		w->best = id;
}

/* A node reached by matching @lvl topic levels. */
static __always_inline void visit(struct walk *w, struct scratch *s, const struct mqf_node *v,
				  __u32 lvl)
{
	__u32 i;

	/* Its '#' child matches this level and everything after it. */
	take(w, v->hash);
	if (lvl >= w->nlev) {
		take(w, v->term);
		return;
	}
	if (!(v->flags & (MQF_NF_LEVELS | MQF_NF_PLUS)))
		return;
	if (w->tail >= MQF_QUEUE_MAX) {
		w->verdict = MQF_UNDECIDED;
		return;
	}
	i = w->tail & (MQF_QUEUE_MAX - 1);
	s->qnode[i] = v->id;
	s->qlevel[i] = lvl;
	s->qflags[i] = v->flags;
	w->tail++;
}

static long walk_step(__u32 iter, void *ctx)
{
	struct walk *w = ctx;
	struct mqf_key key = {};
	struct mqf_node *v;
	struct scratch *s;
	__u32 i, lvl, node, flags;

	if (w->verdict || w->head >= w->tail)
		return 1;
	s = bpf_map_lookup_elem(&mqf_scratch, &w->slot);
	if (!s) {
		w->verdict = MQF_UNDECIDED;
		return 1;
	}
	i = w->head & (MQF_QUEUE_MAX - 1);
	node = s->qnode[i];
	lvl = s->qlevel[i] & (MQF_LEVELS_MAX - 1);
	flags = s->qflags[i];
	w->head++;

	key.parent = node;
	key.gen = w->gen;
	if (flags & MQF_NF_LEVELS) {
		key.kind = MQF_K_LEVEL;
		key.h1 = s->h1[lvl];
		key.h2 = s->h2[lvl];
		key.len = s->len[lvl];
		v = bpf_map_lookup_elem(&mqf_nodes, &key);
		if (v)
			visit(w, s, v, lvl + 1);
	}
	/* Section 4.7.2: a first-level '+' does not match a "$..." topic. */
	if ((flags & MQF_NF_PLUS) && !(lvl == 0 && w->dollar)) {
		key.kind = MQF_K_PLUS;
		key.h1 = 0;
		key.h2 = 0;
		key.len = 0;
		v = bpf_map_lookup_elem(&mqf_nodes, &key);
		if (v)
			visit(w, s, v, lvl + 1);
	}
	return 0;
}

/* Splitting the topic into levels, one level per bpf_loop step. */
struct hash {
	__u32 slot;
	__u32 tlen;
	__u32 pos; /* first byte of the next level; tlen + 1 once done */
	__u32 nlev;
	__u32 verdict;
};

static long hash_level(__u32 iter, void *ctx)
{
	struct hash *h = ctx;
	struct scratch *s;
	__u64 h1 = MQF_FNV_BASIS;
	__u32 h2 = MQF_H2_BASIS;
	__u32 j, p = 0, start = h->pos, n = h->nlev;

	if (start > h->tlen)
		return 1;
	if (n >= MQF_LEVELS_MAX)
		return 1; /* the caller sees pos <= tlen: too many levels */
	s = bpf_map_lookup_elem(&mqf_scratch, &h->slot);
	if (!s) {
		h->verdict = MQF_UNDECIDED;
		return 1;
	}
	for (j = 0; j <= MQF_TOPIC_MAX; j++) {
		__u8 c;

		p = start + j;
		if (p >= h->tlen)
			break;
		c = s->topic[p & (MQF_TOPIC_MAX - 1)];
		if (c == '/')
			break;
		if (c == '+' || c == '#' || c == 0) {
			h->verdict = MQF_UNDECIDED;
			return 1;
		}
		h1 = MQF_H1_STEP(h1, c);
		h2 = MQF_H2_STEP(h2, c);
	}
	n &= MQF_LEVELS_MAX - 1;
	s->h1[n] = h1;
	s->h2[n] = h2;
	s->len[n] = p - start;
	h->nlev++;
	h->pos = p + 1;
	return 0;
}

static __always_inline int load_byte(struct __sk_buff *skb, __u32 off, __u8 *b)
{
	return bpf_skb_load_bytes(skb, off, b, 1);
}

/* Matches the PUBLISH packet that starts at byte @base of @skb, in scratch slot @slot. */
static __always_inline __u32 match_slot(struct __sk_buff *skb, __u32 base, __u32 slot)
{
	struct walk w = { .slot = slot };
	struct mqf_key key = {};
	struct mqf_active *act;
	struct scratch *s;
	struct mqf_node *root;
	struct hash h = {};
	__u32 zero = 0, rl = 0, pos = base + 1, tlen, i, qos;
	__u8 b, tl[2];

	if (load_byte(skb, base, &b))
		return MQF_UNDECIDED;
	if ((b >> 4) != 3)
		return MQF_UNDECIDED;
	qos = (b >> 1) & 3;
	if (qos == 3)
		return MQF_UNDECIDED;
	for (i = 0; i < 4; i++) {
		if (load_byte(skb, pos, &b))
			return MQF_UNDECIDED;
		rl |= (__u32)(b & 0x7f) << (7 * i);
		pos++;
		if (!(b & 0x80))
			break;
	}
	if (b & 0x80)
		return MQF_UNDECIDED;
	if (pos + rl > skb->len)
		return MQF_UNDECIDED;
	if (bpf_skb_load_bytes(skb, pos, tl, 2))
		return MQF_UNDECIDED;
	tlen = ((__u32)tl[0] << 8) | tl[1];
	if (2 + tlen + (qos ? 2 : 0) > rl)
		return MQF_UNDECIDED;
	pos += 2;
	/* Empty: an MQTT 5 topic alias, which only userspace can resolve. */
	if (tlen == 0 || tlen > MQF_TOPIC_MAX)
		return MQF_UNDECIDED;

	s = bpf_map_lookup_elem(&mqf_scratch, &slot);
	if (!s)
		return MQF_UNDECIDED;
	/* Same value, but a range of 1..256 even to the 6.1 verifier, which loses tlen != 0. */
	if (bpf_skb_load_bytes(skb, pos, s->topic, ((tlen - 1) & (MQF_TOPIC_MAX - 1)) + 1))
		return MQF_UNDECIDED;

	/* Hash every level once; the walk then costs lookups only. */
	h.slot = slot;
	h.tlen = tlen;
	bpf_loop(MQF_LEVELS_MAX + 1, hash_level, &h, 0);
	if (h.verdict)
		return h.verdict;
	if (h.pos <= tlen)
		return MQF_UNDECIDED; /* more levels than MQF_LEVELS_MAX */
	w.nlev = h.nlev;
	w.dollar = s->topic[0] == '$';

	/* Read once: the loader never touches the generation a run may be using. */
	act = bpf_map_lookup_elem(&mqf_active, &zero);
	if (!act)
		return MQF_UNDECIDED;
	w.gen = act->gen & 1;
	key.gen = w.gen;
	key.kind = MQF_K_ROOT;
	root = bpf_map_lookup_elem(&mqf_nodes, &key);
	if (!root)
		return MQF_NO_MATCH;
	if (w.dollar) {
		/* "#" at the root must not see "$..." topics, but literal "$SYS" may. */
		struct mqf_node r = *root;

		r.hash = 0;
		visit(&w, s, &r, 0);
	} else {
		visit(&w, s, root, 0);
	}
	bpf_loop(MQF_QUEUE_MAX, walk_step, &w, 0);
	if (w.verdict)
		return w.verdict;
	/* Every pushed node was popped: the bound above is the queue size. */
	return w.best;
}

static __always_inline __u32 match_skb(struct __sk_buff *skb, __u32 base)
{
	__u32 zero = 0, ret, slot;
	__u32 *nest;

	nest = bpf_map_lookup_elem(&mqf_nest, &zero);
	if (!nest)
		return MQF_UNDECIDED;
	slot = __sync_fetch_and_add(nest, 1);
	ret = slot < MQF_NEST_MAX ? match_slot(skb, base, slot) : MQF_UNDECIDED;
	__sync_fetch_and_sub(nest, 1);
	return ret;
}

/*
 * The filter itself, for BPF_PROG_TEST_RUN and for the module (which runs it
 * on an skb holding one whole MQTT packet). Not a classic SO_ATTACH_BPF
 * filter: the return value is a filter id, not a byte count.
 */
SEC("socket")
int mqf_topic_filter(struct __sk_buff *skb)
{
	return match_skb(skb, 0);
}

/*
 * Sockmap mode. The kernel's strparser hands BPF programs the skb of a
 * message that starts stm->strp.offset bytes in, and they cannot see that
 * offset: with two MQTT packets in one segment, the second is judged by the
 * bytes of the first. So there is no stream parser here: the verdict program
 * sees each received skb whole, follows the MQTT framing across skbs in
 * per-socket state, and drops an skb only when it holds whole packets only,
 * all of them QoS 0 PUBLISHes that no filter matches: an skb cannot be
 * split. Anything else passes, to be matched in userspace.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MQF_SOCK_MAX);
	__type(key, __u64); /* socket cookie */
	__type(value, struct mqf_sock_state);
} mqf_sock_state SEC(".maps");

struct frames {
	struct __sk_buff *skb;
	__u32 pos;
	__u32 len;
	__u32 frames;
	__u32 fstart; /* first byte of the current packet, if it began in this skb */
	__u8 fresh; /* it did */
	__u8 keep; /* something in this skb must reach userspace */
	struct mqf_sock_state st;
};

/* A packet whose fixed header just ended: may the skb still be dropped? */
static __always_inline void judge(struct frames *f)
{
	__u8 b;

	if (f->keep)
		return;
	/* Begun in an earlier skb, or going on into a later one: it must pass. */
	if (!f->fresh || f->pos + f->st.rl > f->len) {
		f->keep = 1;
		return;
	}
	/* QoS 1/2 must reach userspace to be acknowledged. */
	if (bpf_skb_load_bytes(f->skb, f->fstart, &b, 1) || (b >> 4) != 3 || ((b >> 1) & 3) != 0) {
		f->keep = 1;
		return;
	}
	if (match_skb(f->skb, f->fstart) != MQF_NO_MATCH)
		f->keep = 1;
}

/* One step: the rest of the current frame's body, then the next fixed header. */
static long frame_step(__u32 iter, void *ctx)
{
	struct frames *f = ctx;
	__u32 skip, k;
	__u8 b;

	if (f->st.carry) {
		skip = f->len - f->pos < f->st.carry ? f->len - f->pos : f->st.carry;
		f->pos += skip;
		f->st.carry -= skip;
	}
	if (f->pos >= f->len)
		return 1;
	if (!f->st.in_hdr) {
		f->fstart = f->pos;
		f->fresh = 1;
		f->pos++; /* type and flags */
		f->st.in_hdr = 1;
		f->st.hpos = 0;
		f->st.rl = 0;
	}
	for (k = 0; k < 4; k++) {
		if (f->pos >= f->len)
			return 1;
		if (bpf_skb_load_bytes(f->skb, f->pos, &b, 1)) {
			f->st.broken = 1;
			return 1;
		}
		f->pos++;
		f->st.rl |= (__u32)(b & 0x7f) << (7 * (f->st.hpos & 3));
		f->st.hpos++;
		if (!(b & 0x80)) {
			f->st.in_hdr = 0;
			f->st.carry = f->st.rl;
			f->frames++;
			judge(f);
			return 0;
		}
		if (f->st.hpos >= 4) {
			/* A fifth length byte: not MQTT any more; stop dropping. */
			f->st.broken = 1;
			return 1;
		}
	}
	return 0;
}

SEC("sk_skb/stream_verdict")
int mqf_stream_verdict(struct __sk_buff *skb)
{
	struct frames f = { .skb = skb, .len = skb->len };
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct mqf_sock_state *st = bpf_map_lookup_elem(&mqf_sock_state, &cookie);

	if (!st || st->broken)
		return SK_PASS;
	f.st = *st;
	/* A packet begun in an earlier skb passes: its start has gone up already. */
	f.keep = f.st.carry || f.st.in_hdr;
	/* Small packets could fill a 64 KiB skb; each step is one packet. */
	bpf_loop(1 << 16, frame_step, &f, 0);
	if (f.pos < f.len)
		f.st.broken = 1; /* more packets than steps: framing lost */
	*st = f.st;
	if (f.keep || !f.frames || f.st.carry || f.st.in_hdr || f.st.broken)
		return SK_PASS;
	return SK_DROP;
}
