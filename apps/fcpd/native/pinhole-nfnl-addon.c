/*
 * pinhole-nfnl.node: the netlink channel inside pinhole-fcpd's own process, a Node-API addon.
 * Same exchange with the kernel as the pinhole-nfnl helper (nfnl-core.h), without the hop
 * through a second process: a one-element SET costs one sendto(2) and one recv(2) on the
 * daemon's thread. nf_tables applies a batch inside sendto(2), so the call does not wait.
 *
 *   open(netnsPath?: string): number
 *       A NETLINK_NETFILTER socket, in the network namespace at netnsPath (e.g. /run/netns/fw;
 *       the thread enters it for the socket(2) call and returns) or in the process's own.
 *       Throws an Error with `errno` set on failure.
 *   run(fd: number, batch: Buffer, id: number, timeoutMs: number): Buffer
 *       Sends the batch and returns the helper's reply frame for it: u32 count, u32 id, then
 *       count x { u32 seq, i32 error, u32 offset } (little-endian); a channel failure is one
 *       record of seq 0 with the negative errno, as the helper reports it.
 *   close(fd: number): undefined
 *
 * Build (native/build.mjs): cc -O2 -shared -fPIC -I<node's include/node> -o pinhole-nfnl.node
 */
#define NFNL_STORAGE static _Thread_local
#include "nfnl-core.h"
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <node_api.h>

NFNL_STORAGE struct nfnl_record records[NFNL_MAX_RECORDS];

static napi_value throw_errno(napi_env env, const char *what, int err)
{
	char msg[256];
	snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
	napi_value text, error, code;
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
	napi_create_error(env, NULL, text, &error);
	napi_create_int32(env, err, &code);
	napi_set_named_property(env, error, "errno", code);
	napi_throw(env, error);
	return NULL;
}

static int arg_int(napi_env env, napi_value v, int32_t *out)
{
	return napi_get_value_int32(env, v, out) == napi_ok;
}

/* A socket in the namespace at path: enter it on this thread, create the socket, come back. */
static int socket_in_netns(const char *path, int *err)
{
	int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (home < 0) {
		*err = errno;
		return -1;
	}
	int target = open(path, O_RDONLY | O_CLOEXEC);
	if (target < 0) {
		*err = errno;
		close(home);
		return -1;
	}
	int fd = -1;
	if (setns(target, CLONE_NEWNET) < 0) {
		*err = errno;
	} else {
		fd = nfnl_open_socket();
		*err = fd < 0 ? errno : 0;
		/* Staying in the other namespace would put every later socket of the daemon there. */
		if (setns(home, CLONE_NEWNET) < 0)
			napi_fatal_error("pinhole-nfnl.node", NAPI_AUTO_LENGTH,
					 "could not return to the daemon's network namespace",
					 NAPI_AUTO_LENGTH);
	}
	close(target);
	close(home);
	return fd;
}

static napi_value js_open(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	char path[4096];
	int fd, err;
	napi_valuetype t = napi_undefined;
	if (argc >= 1)
		napi_typeof(env, argv[0], &t);
	if (t == napi_string) {
		size_t len;
		if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok ||
		    len == 0 || len >= sizeof path - 1)
			return throw_errno(env, "netlink socket: bad namespace path", EINVAL);
		fd = socket_in_netns(path, &err);
	} else {
		fd = nfnl_open_socket();
		err = fd < 0 ? errno : 0;
	}
	if (fd < 0)
		return throw_errno(env, "netlink socket", err);
	napi_value out;
	napi_create_int32(env, fd, &out);
	return out;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static napi_value js_run(napi_env env, napi_callback_info info)
{
	size_t argc = 4;
	napi_value argv[4];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	int32_t fd, id, timeout;
	void *data;
	size_t len;
	if (argc < 4 || !arg_int(env, argv[0], &fd) || !arg_int(env, argv[2], &id) ||
	    !arg_int(env, argv[3], &timeout) ||
	    napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || len > NFNL_MAX_BATCH)
		return throw_errno(env, "run(fd, batch, id, timeoutMs)", EINVAL);
	uint32_t count;
	int err = nfnl_exchange(fd, data, (uint32_t)len, timeout, records, &count);
	if (err != 0) {
		records[0] = (struct nfnl_record){ 0, -err, NFNL_NO_OFFSET };
		count = 1;
	}
	napi_value out;
	unsigned char *reply;
	if (napi_create_buffer(env, 8 + 12 * (size_t)count, (void **)&reply, &out) != napi_ok)
		return throw_errno(env, "run: reply buffer", ENOMEM);
	put_u32(reply, count);
	put_u32(reply + 4, (uint32_t)id);
	for (uint32_t i = 0; i < count; i++) {
		unsigned char *p = reply + 8 + 12 * i;
		put_u32(p, records[i].seq);
		put_u32(p + 4, (uint32_t)records[i].error);
		put_u32(p + 8, records[i].offset);
	}
	return out;
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	int32_t fd;
	if (argc >= 1 && arg_int(env, argv[0], &fd) && fd > 2)
		close(fd);
	return NULL;
}

NAPI_MODULE_INIT()
{
	const struct {
		const char *name;
		napi_callback fn;
	} fns[] = { { "open", js_open }, { "run", js_run }, { "close", js_close } };
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		napi_value f;
		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
		napi_set_named_property(env, exports, fns[i].name, f);
	}
	return exports;
}
