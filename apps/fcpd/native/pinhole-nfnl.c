/*
 * pinhole-nfnl: relays nf_tables set-element batches from pinhole-fcpd to the kernel over a
 * NETLINK_NETFILTER socket, and returns the kernel's per-message acknowledgements.
 *
 * The daemon builds the netlink messages (see src/nfnl.ts); this program only checks that a
 * batch holds nothing but NFT_MSG_NEWSETELEM / NFT_MSG_DELSETELEM messages between
 * NFNL_MSG_BATCH_BEGIN and NFNL_MSG_BATCH_END, sends it with one sendto(2), and collects one
 * NLMSG_ERROR (0 = applied) for every message that asked for an ACK.
 *
 * Protocol on stdin/stdout, all integers little-endian (the daemon runs on the same host):
 *   request:  u32 length of the batch, u32 request id, batch bytes
 *   reply:    u32 record count, u32 request id, count x { u32 seq, i32 error, u32 offset }
 *             error is 0 or a negative errno; offset is the byte offset of the attribute the
 *             kernel blamed (extended ACK) inside the message, or 0xffffffff.
 * A reply with one record of seq 0 reports a failure of the channel itself (send, receive,
 * refused batch, timeout). EOF on stdin ends the program with status 0.
 *
 * Only libc and the kernel's UAPI headers are needed:  cc -O2 -o pinhole-nfnl pinhole-nfnl.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>

#define MAX_BATCH (64u << 20)
#define MAX_RECORDS 65536u
#define ACK_TIMEOUT_MS 10000
#define SOCK_BUF (16 << 20)
#define NO_OFFSET 0xffffffffu

struct record {
	uint32_t seq;
	int32_t error;
	uint32_t offset;
};

static int nl;
static unsigned char *batch;
static unsigned char rxbuf[1 << 20];
static struct record records[MAX_RECORDS];

static int read_full(void *p, size_t n)
{
	unsigned char *b = p;
	while (n > 0) {
		ssize_t r = read(STDIN_FILENO, b, n);
		if (r == 0)
			return 0;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += r;
		n -= (size_t)r;
	}
	return 1;
}

static int write_full(const void *p, size_t n)
{
	const unsigned char *b = p;
	while (n > 0) {
		ssize_t r = write(STDOUT_FILENO, b, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int reply(uint32_t id, const struct record *rec, uint32_t count)
{
	uint32_t head[2] = { count, id };
	if (write_full(head, sizeof head) < 0)
		return -1;
	return count == 0 ? 0 : write_full(rec, count * sizeof *rec);
}

static int fail(uint32_t id, int err)
{
	struct record r = { 0, -err, NO_OFFSET };
	return reply(id, &r, 1);
}

static int open_socket(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0)
		return -1;
	struct sockaddr_nl local = { .nl_family = AF_NETLINK };
	if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
		close(fd);
		return -1;
	}
	int one = 1, size = SOCK_BUF;
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
static long check_batch(const unsigned char *b, uint32_t len, uint32_t *begin_seq,
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
static uint32_t ack_offset(const struct nlmsghdr *h)
{
	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
		return NO_OFFSET;
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
	return NO_OFFSET;
}

static int run_batch(uint32_t id, uint32_t len)
{
	uint32_t begin_seq = 0, end_seq = 0;
	long want = check_batch(batch, len, &begin_seq, &end_seq);
	if (want < 0 || (unsigned long)want > MAX_RECORDS)
		return fail(id, EPROTO);
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ssize_t s;
	do
		s = sendto(nl, batch, len, 0, (struct sockaddr *)&kernel, sizeof kernel);
	while (s < 0 && errno == EINTR);
	if (s < 0)
		return fail(id, errno);
	uint32_t got = 0;
	while (got < (uint32_t)want) {
		/* The kernel queues one ack per message: read them while there are some, and wait
		 * (bounded) only when none is queued. */
		ssize_t n = recv(nl, rxbuf, sizeof rxbuf, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd p = { .fd = nl, .events = POLLIN };
				int r = poll(&p, 1, ACK_TIMEOUT_MS);
				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0)
					return fail(id, r == 0 ? ETIMEDOUT : errno);
				continue;
			}
			/* ENOBUFS: acks were lost; the outcome is unknown. */
			return fail(id, errno);
		}
		for (struct nlmsghdr *h = (void *)rxbuf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type != NLMSG_ERROR ||
			    h->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nlmsgerr))
				continue;
			const struct nlmsgerr *e = NLMSG_DATA(h);
			struct record rec = { e->msg.nlmsg_seq, e->error, ack_offset(h) };
			if (rec.seq == begin_seq) {
				/* The batch as a whole was refused (e.g. ENOMEM): nothing applied. */
				records[0] = rec;
				return reply(id, records, 1);
			}
			/* Only this batch's messages count: a late ack of an earlier batch (after a
			 * timeout or lost acks) must not stand in for one of ours. */
			if (rec.seq - begin_seq - 1 >= end_seq - begin_seq - 1)
				continue;
			if (got < MAX_RECORDS)
				records[got++] = rec;
		}
	}
	return reply(id, records, got);
}

int main(void)
{
	nl = open_socket();
	if (nl < 0) {
		fprintf(stderr, "pinhole-nfnl: netlink socket: %s\n", strerror(errno));
		return 2;
	}
	/* A transaction of a few thousand operations is a few hundred KiB: a pipe larger than the
	 * default 64 KiB takes it in one write(2) of the daemon, without partial writes. Best
	 * effort (the limit is /proc/sys/fs/pipe-max-size). */
	fcntl(STDIN_FILENO, F_SETPIPE_SZ, 1 << 20);
	batch = malloc(MAX_BATCH);
	if (batch == NULL)
		return 2;
	/* Announce readiness: an empty reply with id 0. */
	if (reply(0, NULL, 0) < 0)
		return 3;
	for (;;) {
		uint32_t head[2];
		int r = read_full(head, sizeof head);
		if (r == 0)
			return 0;
		if (r < 0 || head[0] > MAX_BATCH)
			return 4;
		if (read_full(batch, head[0]) != 1)
			return 4;
		if (run_batch(head[1], head[0]) < 0)
			return 3;
	}
}
