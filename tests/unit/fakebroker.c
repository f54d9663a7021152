// SPDX-License-Identifier: GPL-2.0 OR MIT
/* A scripted MQTT broker thread on loopback: decodes with the core's codec, records packets, answers per its config. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fakebroker.h"

struct fb {
	pthread_t th;
	pthread_mutex_t mu;
	int lfd, cfd;
	uint16_t port;
	volatile int stop;
	struct fb_cfg cfg;
	int conn_no;
	int npub_conn;		/* PUBLISHes received on this connection */
	u8 version;
	u8 rx[1 << 20];
	u32 rx_len;
	char alias[64][256];
	u16 unacked[1024];
	u8 unacked_qos[1024];
	int nunacked;
	char sessions[16][64];
	int nsessions;
	struct fb_rec *rec;
	int nrec;
	u16 next_pid;
};

void fb_cfg_default(struct fb_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->session_present = -1;
	c->suback_code = 0xff;
}

static void cstr(char *dst, size_t cap, const u8 *p, u32 len)
{
	if (!p)
		len = 0;
	if (len >= cap)
		len = cap - 1;
	if (len)
		memcpy(dst, p, len);
	dst[len] = 0;
}

static int tx(struct fb *fb, const void *p, int n)
{
	if (fb->cfd < 0)
		return -1;
	return send(fb->cfd, p, n, MSG_NOSIGNAL) == n ? 0 : -1;
}

static void tx_pkt(struct fb *fb, struct mqc_packet *p)
{
	u8 buf[4096];
	int n = mqc_encode(fb->version ? fb->version : MQC_V5, p, buf, sizeof(buf));

	if (n > 0)
		tx(fb, buf, n);
	else
		fprintf(stderr, "fakebroker: encode type %d failed %d\n", p->type, n);
}

static void tx_ack(struct fb *fb, u8 type, u16 pid)
{
	struct mqc_packet p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.pid = pid;
	tx_pkt(fb, &p);
}

static void close_conn(struct fb *fb)
{
	if (fb->cfd >= 0) {
		shutdown(fb->cfd, SHUT_RDWR);
		close(fb->cfd);
	}
	fb->cfd = -1;
	fb->rx_len = 0;
}

static struct fb_rec *rec_new(struct fb *fb, const struct mqc_packet *p)
{
	struct fb_rec *r;

	if (fb->nrec >= FB_MAX_REC)
		return NULL;
	r = &fb->rec[fb->nrec++];
	memset(r, 0, sizeof(*r));
	r->conn = fb->conn_no;
	r->type = p->type;
	r->flags = p->flags;
	r->pid = p->pid;
	r->reason = p->reason;
	r->props_present = p->props.present;
	return r;
}

static bool session_known(struct fb *fb, const char *id)
{
	for (int i = 0; i < fb->nsessions; i++)
		if (!strcmp(fb->sessions[i], id))
			return true;
	if (fb->nsessions < 16)
		snprintf(fb->sessions[fb->nsessions++], 64, "%s", id);
	return false;
}

static void on_connect(struct fb *fb, struct mqc_packet *p, struct fb_rec *r)
{
	struct mqc_packet a;
	const struct mqc_connect *c = &p->connect;
	bool known;

	fb->version = c->version;
	fb->npub_conn = 0;
	fb->nunacked = 0;
	memset(fb->alias, 0, sizeof(fb->alias));
	if (r) {
		r->clean = c->clean;
		r->keepalive = c->keepalive;
		cstr(r->client_id, sizeof(r->client_id), c->client_id.p, c->client_id.len);
		if (c->username.p)
			cstr(r->username, sizeof(r->username), c->username.p, c->username.len);
		if (c->will) {
			cstr(r->topic, sizeof(r->topic), c->will->topic.p, c->will->topic.len);
			r->payload_len = c->will->payload.len < 512 ? c->will->payload.len : 512;
			memcpy(r->payload, c->will->payload.p, r->payload_len);
			r->will_qos = c->will->qos;
			r->will_retain = c->will->retain;
			if (c->will->props) {
				r->will_delay = c->will->props->will_delay;
				r->message_expiry = c->will->props->message_expiry;
				cstr(r->content_type, sizeof(r->content_type),
				     c->will->props->content_type.p,
				     c->will->props->content_type.len);
			}
		}
		r->props_present = p->props.present | (c->props ? c->props->present : 0);
	}
	memset(&a, 0, sizeof(a));
	a.type = MQC_CONNACK;
	a.connack.reason = fb->cfg.connack_reason;
	{
		char id[64];

		cstr(id, sizeof(id), c->client_id.p, c->client_id.len);
		known = session_known(fb, id);
	}
	if (!a.connack.reason) {
		if (fb->cfg.session_present >= 0)
			a.connack.session_present = fb->cfg.session_present;
		else
			a.connack.session_present = !c->clean && known;
	}
	if (fb->version == MQC_V5)
		a.connack.props = fb->cfg.connack_props;
	tx_pkt(fb, &a);
	if (a.connack.reason)
		close_conn(fb);
}

static void on_publish(struct fb *fb, struct mqc_packet *p, struct fb_rec *r)
{
	const struct mqc_pub *pb = &p->publish;
	u16 al = p->props.present & (1ull << MQC_P_TOPIC_ALIAS) ? p->props.topic_alias : 0;

	if (r) {
		r->qos = pb->qos;
		r->dup = pb->dup;
		r->retain = pb->retain;
		r->pid = pb->pid;
		r->alias = al;
		if (pb->topic.len)
			cstr(r->topic, sizeof(r->topic), pb->topic.p, pb->topic.len);
		if (al && al < 64) {
			if (pb->topic.len)
				snprintf(fb->alias[al], 256, "%s", r->topic);
			else
				snprintf(r->topic, sizeof(r->topic), "%s", fb->alias[al]);
		}
		r->payload_len = pb->payload.len < 512 ? pb->payload.len : 512;
		memcpy(r->payload, pb->payload.p, r->payload_len);
		r->message_expiry = p->props.message_expiry;
		cstr(r->content_type, sizeof(r->content_type), p->props.content_type.p,
		     p->props.content_type.len);
		if (p->props.raw.len) {
			struct mqc_str cur = p->props.raw;
			struct mqc_prop pr;

			while (mqc_prop_next(&cur, &pr) == 1)
				if (pr.id == MQC_P_USER_PROPERTY) {
					cstr(r->user_name, 32, pr.str.p, pr.str.len);
					cstr(r->user_value, 32, pr.str2.p, pr.str2.len);
				}
		}
	}
	fb->npub_conn++;
	if (fb->conn_no == 1 && fb->cfg.garbage_after && fb->npub_conn == fb->cfg.garbage_after) {
		/* PUBACK with a 5-byte remaining length field: malformed varint */
		static const u8 junk[] = { 0x40, 0xff, 0xff, 0xff, 0xff, 0x7f };

		tx(fb, junk, sizeof(junk));
		return;
	}
	if (fb->conn_no == 1 && fb->cfg.close_after && fb->npub_conn >= fb->cfg.close_after) {
		close_conn(fb);
		return;
	}
	if (fb->conn_no == 1 && fb->cfg.disconnect_ref && fb->npub_conn == 1) {
		struct mqc_packet d;

		memset(&d, 0, sizeof(d));
		d.type = MQC_DISCONNECT;
		d.reason = 0x9c;
		d.props.present = 1ull << MQC_P_SERVER_REFERENCE;
		d.props.server_reference.p = (const u8 *)fb->cfg.disconnect_ref;
		d.props.server_reference.len = strlen(fb->cfg.disconnect_ref);
		tx_pkt(fb, &d);
		close_conn(fb);
		return;
	}
	if (!pb->qos)
		return;
	if (fb->cfg.no_ack) {
		if (fb->nunacked < 1024) {
			fb->unacked[fb->nunacked] = pb->pid;
			fb->unacked_qos[fb->nunacked++] = pb->qos;
		}
		return;
	}
	tx_ack(fb, pb->qos == 1 ? MQC_PUBACK : MQC_PUBREC, pb->pid);
}

static void on_packet(struct fb *fb, const u8 *pkt, u32 len)
{
	struct mqc_packet *p = calloc(1, sizeof(*p));
	struct fb_rec *r;
	struct mqc_packet a;
	int err;

	if (!p)
		return;
	err = mqc_decode(fb->version ? fb->version : MQC_V5, pkt, len, 0, p);
	if (err) {
		fprintf(stderr, "fakebroker: bad packet from client: %s\n", mqc_strerror(err));
		close_conn(fb);
		free(p);
		return;
	}
	r = rec_new(fb, p);
	switch (p->type) {
	case MQC_CONNECT:
		on_connect(fb, p, r);
		break;
	case MQC_PUBLISH:
		on_publish(fb, p, r);
		break;
	case MQC_PUBREL:
		if (!fb->cfg.no_ack && !fb->cfg.no_pubcomp)
			tx_ack(fb, MQC_PUBCOMP, p->pid);
		break;
	case MQC_SUBSCRIBE:
		memset(&a, 0, sizeof(a));
		a.type = MQC_SUBACK;
		a.pid = p->pid;
		a.suback.n = p->sub.n;
		for (u32 i = 0; i < p->sub.n; i++)
			a.suback.codes[i] = fb->cfg.suback_code == 0xff ? (p->sub.options[i] & 3) :
									  fb->cfg.suback_code;
		if (r) {
			r->nfilters = p->sub.n;
			cstr(r->topic, sizeof(r->topic), p->sub.filter[0].p, p->sub.filter[0].len);
			for (u32 i = 0; i < p->sub.n && i < 8; i++)
				r->options[i] = p->sub.options[i];
			r->sub_id = p->props.subscription_id;
		}
		tx_pkt(fb, &a);
		break;
	case MQC_UNSUBSCRIBE:
		memset(&a, 0, sizeof(a));
		a.type = MQC_UNSUBACK;
		a.pid = p->pid;
		a.suback.n = p->sub.n;
		if (r)
			r->nfilters = p->sub.n;
		tx_pkt(fb, &a);
		break;
	case MQC_PINGREQ:
		memset(&a, 0, sizeof(a));
		a.type = MQC_PINGRESP;
		tx_pkt(fb, &a);
		break;
	case MQC_DISCONNECT:
		close_conn(fb);
		break;
	default:
		break;
	}
	free(p);
}

static void *fb_thread(void *arg)
{
	struct fb *fb = arg;

	while (!fb->stop) {
		struct pollfd pf[2] = { { fb->lfd, POLLIN, 0 }, { fb->cfd, POLLIN, 0 } };
		int n = poll(pf, fb->cfd >= 0 ? 2 : 1, 20);

		if (n <= 0)
			continue;
		pthread_mutex_lock(&fb->mu);
		if (pf[0].revents & POLLIN) {
			int c = accept(fb->lfd, NULL, NULL);

			if (c >= 0) {
				int one = 1;

				close_conn(fb);
				setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				fb->cfd = c;
				fb->conn_no++;
				fb->version = 0;
			}
		} else if (fb->cfd >= 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t got = recv(fb->cfd, fb->rx + fb->rx_len, sizeof(fb->rx) - fb->rx_len, 0);

			if (got <= 0) {
				close_conn(fb);
			} else {
				u32 off = 0;

				fb->rx_len += got;
				while (fb->cfd >= 0 && off < fb->rx_len) {
					int fl = mqc_frame_len(fb->rx + off, fb->rx_len - off, 0);

					if (fl == 0 || (fl > 0 && (u32)fl > fb->rx_len - off))
						break;
					if (fl < 0) {
						close_conn(fb);
						break;
					}
					on_packet(fb, fb->rx + off, fl);
					off += fl;
				}
				if (fb->cfd >= 0) {
					memmove(fb->rx, fb->rx + off, fb->rx_len - off);
					fb->rx_len -= off;
				}
			}
		}
		pthread_mutex_unlock(&fb->mu);
	}
	return NULL;
}

struct fb *fb_start(const struct fb_cfg *cfg)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	struct fb *fb = calloc(1, sizeof(*fb));
	int one = 1;

	if (!fb)
		return NULL;
	fb->rec = calloc(FB_MAX_REC, sizeof(*fb->rec));
	fb->cfd = -1;
	fb->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fb->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (!fb->rec || fb->lfd < 0 || bind(fb->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(fb->lfd, 8) || getsockname(fb->lfd, (struct sockaddr *)&sa, &sl)) {
		if (fb->lfd >= 0)
			close(fb->lfd);
		free(fb->rec);
		free(fb);
		return NULL;
	}
	fb->port = ntohs(sa.sin_port);
	if (cfg)
		fb->cfg = *cfg;
	else
		fb_cfg_default(&fb->cfg);
	pthread_mutex_init(&fb->mu, NULL);
	if (pthread_create(&fb->th, NULL, fb_thread, fb)) {
		close(fb->lfd);
		free(fb->rec);
		free(fb);
		return NULL;
	}
	return fb;
}

void fb_stop(struct fb *fb)
{
	if (!fb)
		return;
	fb->stop = 1;
	pthread_join(fb->th, NULL);
	close_conn(fb);
	close(fb->lfd);
	pthread_mutex_destroy(&fb->mu);
	free(fb->rec);
	free(fb);
}

uint16_t fb_port(struct fb *fb)
{
	return fb->port;
}

void fb_set_cfg(struct fb *fb, const struct fb_cfg *cfg)
{
	pthread_mutex_lock(&fb->mu);
	fb->cfg = *cfg;
	pthread_mutex_unlock(&fb->mu);
}

int fb_records(struct fb *fb, int from, struct fb_rec *out, int max)
{
	int n;

	pthread_mutex_lock(&fb->mu);
	n = fb->nrec;
	for (int i = 0; i < max && from + i < n; i++)
		out[i] = fb->rec[from + i];
	pthread_mutex_unlock(&fb->mu);
	return n;
}

int fb_count(struct fb *fb, int type)
{
	int n = 0;

	pthread_mutex_lock(&fb->mu);
	for (int i = 0; i < fb->nrec; i++)
		n += !type || fb->rec[i].type == type;
	pthread_mutex_unlock(&fb->mu);
	return n;
}

int fb_conns(struct fb *fb)
{
	int n;

	pthread_mutex_lock(&fb->mu);
	n = fb->conn_no;
	pthread_mutex_unlock(&fb->mu);
	return n;
}

int fb_inject(struct fb *fb, const void *buf, int len)
{
	int r;

	pthread_mutex_lock(&fb->mu);
	r = tx(fb, buf, len);
	pthread_mutex_unlock(&fb->mu);
	return r;
}

int fb_publish(struct fb *fb, const char *topic, const char *payload, int qos,
	       const struct mqc_props *props, const struct mqc_user_prop *up, int nup)
{
	struct mqc_packet p;
	int r = -1;

	memset(&p, 0, sizeof(p));
	p.type = MQC_PUBLISH;
	p.publish.topic.p = (const u8 *)topic;
	p.publish.topic.len = strlen(topic);
	p.publish.payload.p = (const u8 *)payload;
	p.publish.payload.len = strlen(payload);
	p.publish.qos = qos;
	p.publish.props = props;
	p.publish.user = up;
	p.publish.nuser = nup;
	pthread_mutex_lock(&fb->mu);
	p.publish.pid = qos ? ++fb->next_pid : 0;
	if (fb->cfd >= 0) {
		u8 buf[4096];
		int n = mqc_encode(fb->version, &p, buf, sizeof(buf));

		r = n > 0 ? tx(fb, buf, n) : -1;
	}
	pthread_mutex_unlock(&fb->mu);
	return r;
}

int fb_ack_all(struct fb *fb)
{
	int n;

	pthread_mutex_lock(&fb->mu);
	n = fb->nunacked;
	for (int i = 0; i < n; i++)
		tx_ack(fb, fb->unacked_qos[i] == 1 ? MQC_PUBACK : MQC_PUBREC, fb->unacked[i]);
	fb->nunacked = 0;
	pthread_mutex_unlock(&fb->mu);
	return n;
}

void fb_drop(struct fb *fb)
{
	pthread_mutex_lock(&fb->mu);
	close_conn(fb);
	pthread_mutex_unlock(&fb->mu);
}
