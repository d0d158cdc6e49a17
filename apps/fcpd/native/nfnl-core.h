/*
 * The part of pinhole-fcpd's netlink channel that talks to the kernel, shared by the helper
 * program (pinhole-nfnl.c) and the in-process addon (pinhole-nfnl-addon.c): open a
 * NETLINK_NETFILTER socket, check that a batch holds nothing but NFT_MSG_NEWSETELEM /
 * NFT_MSG_DELSETELEM messages between NFNL_MSG_BATCH_BEGIN and NFNL_MSG_BATCH_END, send it with
 * one sendto(2), and collect one NLMSG_ERROR (0 = applied) for every message that asked for an
 * ACK.
 *
 * nf_tables handles a batch inside sendto(2): its acks are queued on the socket by the time the
 * call returns, so collecting them does not wait (the bounded poll is for a kernel that does).
 *
 * Only libc and the kernel's UAPI headers are needed.
 */
#ifndef PINHOLE_NFNL_CORE_H
#define PINHOLE_NFNL_CORE_H

#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>

#define NFNL_MAX_BATCH (64u << 20)
#define NFNL_MAX_RECORDS 65536u
#define NFNL_SOCK_BUF (16 << 20)
#define NFNL_NO_OFFSET 0xffffffffu

/* The kernel's answer to one message: its sequence number, 0 or a negative errno, and the byte
 * offset of the attribute the kernel blamed (extended ACK) inside the message, or NO_OFFSET. */
struct nfnl_record {
	uint32_t seq;
	int32_t error;
	uint32_t offset;
};

/* The addon defines NFNL_STORAGE as `static _Thread_local`: Node may load it in several threads. */
#ifndef NFNL_STORAGE
#define NFNL_STORAGE static
#endif

NFNL_STORAGE unsigned char nfnl_rxbuf[1 << 20];

static int nfnl_open_socket(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0)
		return -1;
	struct sockaddr_nl local = { .nl_family = AF_NETLINK };
	if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	int one = 1, size = NFNL_SOCK_BUF;
	/* Acks carry only the header of the message they answer, plus the blamed attribute. */
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
	return fd;
}

/*
 * Checks the batch's shape and counts the messages that asked for an ACK. Returns that count,
 * or -1 if the batch is anything but BEGIN, set-element messages, END.
 */
static long nfnl_check_batch(const unsigned char *b, uint32_t len, uint32_t *begin_seq,
			     uint32_t *end_seq)
{
	uint32_t off = 0, n = 0, acks = 0;
	int ended = 0;
	while (off < len) {
		if (len - off < NLMSG_HDRLEN)
			return -1;
		const struct nlmsghdr *h = (const void *)(b + off);
		if (h->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nfgenmsg) || h->nlmsg_len > len - off)
			return -1;
		if (ended)
			return -1;
		if (n == 0) {
			if (h->nlmsg_type != NFNL_MSG_BATCH_BEGIN)
				return -1;
			*begin_seq = h->nlmsg_seq;
		} else if (h->nlmsg_type == NFNL_MSG_BATCH_END) {
			ended = 1;
			*end_seq = h->nlmsg_seq;
		} else {
			uint16_t t = h->nlmsg_type;
			if ((t >> 8) != NFNL_SUBSYS_NFTABLES)
				return -1;
			t &= 0xff;
			if (t != NFT_MSG_NEWSETELEM && t != NFT_MSG_DELSETELEM)
				return -1;
			if (h->nlmsg_flags & NLM_F_ACK)
				acks++;
		}
		n++;
		off += NLMSG_ALIGN(h->nlmsg_len);
	}
	return ended ? (long)acks : -1;
}

/* The blamed attribute's offset from the extended ACK's TLVs, if any. */
static uint32_t nfnl_ack_offset(const struct nlmsghdr *h)
{
	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
		return NFNL_NO_OFFSET;
	uint32_t start = NLMSG_HDRLEN + sizeof(struct nlmsgerr);
	if (!(h->nlmsg_flags & NLM_F_CAPPED)) {
		const struct nlmsgerr *e = NLMSG_DATA(h);
		start += e->msg.nlmsg_len - NLMSG_HDRLEN;
	}
	uint32_t off = NLMSG_ALIGN(start);
	while (off + NLA_HDRLEN <= h->nlmsg_len) {
		const struct nlattr *a = (const void *)((const unsigned char *)h + off);
		if (a->nla_len < NLA_HDRLEN || off + a->nla_len > h->nlmsg_len)
			break;
		if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_OFFS && a->nla_len >= NLA_HDRLEN + 4) {
			uint32_t v;
			memcpy(&v, (const unsigned char *)a + NLA_HDRLEN, 4);
			return v;
		}
		off += NLA_ALIGN(a->nla_len);
	}
	return NFNL_NO_OFFSET;
}

/*
 * Sends one batch on socket nl and collects the acks of its messages into records (room for
 * NFNL_MAX_RECORDS). Returns 0 with *count set: the acks in arrival order, or one record with the
 * BEGIN message's sequence when the kernel refused the batch as a whole (nothing applied).
 * Returns a positive errno when the channel failed (bad batch shape: EPROTO; send or receive
 * error; no ack within timeout_ms: ETIMEDOUT; acks lost: ENOBUFS): the outcome is unknown.
 */
static int nfnl_exchange(int nl, const unsigned char *batch, uint32_t len, int timeout_ms,
			 struct nfnl_record *records, uint32_t *count)
{
	uint32_t begin_seq = 0, end_seq = 0;
	*count = 0;
	long want = nfnl_check_batch(batch, len, &begin_seq, &end_seq);
	if (want < 0 || (unsigned long)want > NFNL_MAX_RECORDS)
		return EPROTO;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ssize_t s;
	do
		s = sendto(nl, batch, len, 0, (struct sockaddr *)&kernel, sizeof kernel);
	while (s < 0 && errno == EINTR);
	if (s < 0)
		return errno;
	uint32_t got = 0;
	while (got < (uint32_t)want) {
		/* Read the acks while some are queued; wait (bounded) only when none is. */
		ssize_t n = recv(nl, nfnl_rxbuf, sizeof nfnl_rxbuf, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd p = { .fd = nl, .events = POLLIN };
				int r = poll(&p, 1, timeout_ms);
				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0)
					return r == 0 ? ETIMEDOUT : errno;
				continue;
			}
			/* ENOBUFS: acks were lost; the outcome is unknown. */
			return errno;
		}
		for (struct nlmsghdr *h = (void *)nfnl_rxbuf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type != NLMSG_ERROR ||
			    h->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nlmsgerr))
				continue;
			const struct nlmsgerr *e = NLMSG_DATA(h);
			struct nfnl_record rec = { e->msg.nlmsg_seq, e->error, nfnl_ack_offset(h) };
			if (rec.seq == begin_seq) {
				/* The batch as a whole was refused (e.g. ENOMEM): nothing applied. */
				records[0] = rec;
				*count = 1;
				return 0;
			}
			/* Only this batch's messages count: a late ack of an earlier batch (after a
			 * timeout or lost acks) must not stand in for one of ours. */
			if (rec.seq - begin_seq - 1 >= end_seq - begin_seq - 1)
				continue;
			if (got < NFNL_MAX_RECORDS)
				records[got++] = rec;
		}
	}
	*count = got;
	return 0;
}

#endif
