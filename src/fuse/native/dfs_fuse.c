// dfs_fuse: a small N-API binding to libfuse3's low-level API.
//
// Why our own binding (docs/decisions/0001-fuse-binding.md): the low-level API is
// inode-based like our namespace, replies are asynchronous (a request is answered
// whenever JavaScript is ready, from the main thread), times cross as seconds +
// nanoseconds, UTIME_NOW/OMIT arrive as flags, writes are up to 1 MiB, and unlink of
// an open file needs no hidden rename.
//
// Threading: none of our own. /dev/fuse is non-blocking and watched by libuv (uv_poll)
// on the JavaScript thread; when it is readable we read and dispatch requests right
// there, each one calling the JS handler synchronously (napi_make_callback, so promise
// continuations run after it). JavaScript answers later by calling reply*() with the
// request pointer. Compared with a loop thread handing requests over through a
// thread-safe function, this saves a thread wake-up and a queue hop per request. A
// bounded number of requests is read per wake-up so the event loop keeps turning; the
// kernel bounds the requests in flight.
#include <node_api.h>
#include <fuse_lowlevel.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <uv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

enum {
  OP_LOOKUP = 1, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR, OP_UNLINK,
  OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE, OP_FLUSH,
  OP_RELEASE, OP_FSYNC, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR, OP_FSYNCDIR, OP_STATFS,
  OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR, OP_CREATE, OP_FALLOCATE,
  OP_READDIRPLUS, OP_FORGET, OP_INIT, OP_EXIT, OP_INTERRUPT
};

// Layout of the shared Float64Array through which numeric arguments reach JavaScript.
enum {
  A_REQ = 0, A_INO, A_INO2, A_SIZE, A_OFF, A_FH, A_FLAGS, A_MODE, A_RDEV, A_UID, A_GID,
  A_PID, A_UMASK, A_TOSET, A_S_MODE, A_S_UID, A_S_GID, A_S_SIZE, A_S_ATIME_S,
  A_S_ATIME_NS, A_S_MTIME_S, A_S_MTIME_NS, A_INTR, A_COUNT
};

#define ATTR_FIELDS 15

typedef struct {
  int op;
  fuse_req_t req;
  uint64_t ino, ino2, size, fh;
  int64_t off;
  int flags;
  uint32_t mode, umask;
  uint64_t rdev;
  uint32_t uid, gid, pid;
  int to_set;
  struct stat st;
  char *name, *name2;
  char *data;
  size_t data_len;
  // The kernel interrupted the request before it reached JavaScript.
  int interrupted;
} dfs_req_t;

/** Requests read from /dev/fuse per readable event before yielding to the event loop. */
#define REQUESTS_PER_WAKEUP 64

typedef struct {
  struct fuse_session *se;
  napi_env env;
  napi_ref handler_ref;
  napi_async_context async_ctx;
  uv_poll_t poll;
  int polling;
  struct fuse_buf fbuf;
  napi_ref nums_ref;
  double *nums;
  unsigned max_write;
  unsigned max_readahead;
  int writeback_cache;
  // Set while fuse_req_interrupt_func runs: it calls the interrupt callback at once when
  // the interrupt came first, and the request must not be answered from inside it.
  int registering;
  int registered_interrupted;
} dfs_session_t;

static void call_js(dfs_session_t *s, dfs_req_t *r);

#define CHECK(env, call)                                                       \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      napi_throw_error((env), NULL, "dfs_fuse: N-API call failed: " #call);   \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static char *dup_str(const char *s) { return s ? strdup(s) : NULL; }

// Interrupts (FUSE_INTERRUPT): the kernel sends one when the process waiting for a request
// we already read gets a signal. libfuse calls this with the request still unanswered
// (fuse_free_req clears the callback under the session lock before a reply frees it) and
// holding a reference of its own, with no libfuse lock that a reply takes: so JavaScript
// is told right here (OP_INTERRUPT, the request in A_REQ) and may answer the request at
// once or later; whether to answer EINTR, and that only one answer is ever sent, is the
// adapter's business (adapter.ts).
static void on_interrupt(fuse_req_t req, void *data) {
  dfs_session_t *s = data;
  if (s->registering) {
    s->registered_interrupted = 1;
    return;
  }
  dfs_req_t *r = calloc(1, sizeof(dfs_req_t));
  if (!r) return; // the request is then answered when its call completes, as without interrupts
  r->op = OP_INTERRUPT;
  r->req = req;
  call_js(s, r);
}

static dfs_req_t *new_req(int op, fuse_req_t req) {
  dfs_req_t *r = calloc(1, sizeof(dfs_req_t));
  if (!r) return NULL;
  r->op = op;
  r->req = req;
  if (req) {
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    r->uid = ctx->uid;
    r->gid = ctx->gid;
    r->pid = ctx->pid;
    r->umask = ctx->umask;
    dfs_session_t *s = fuse_req_userdata(req);
    s->registering = 1;
    s->registered_interrupted = 0;
    fuse_req_interrupt_func(req, on_interrupt, s);
    s->registering = 0;
    r->interrupted = s->registered_interrupted;
  }
  return r;
}

static void free_req(dfs_req_t *r) {
  free(r->name);
  free(r->name2);
  free(r->data);
  free(r);
}

// Runs inside fuse_session_process_buf, on the JS thread: hand the request to JS now.
static void post(dfs_req_t *r) {
  call_js(fuse_req_userdata(r->req), r);
}

#define NEW_OR_ENOMEM(op)                        \
  dfs_req_t *r = new_req((op), req);             \
  if (!r) { fuse_reply_err(req, ENOMEM); return; }

static void ll_init(void *userdata, struct fuse_conn_info *conn) {
  dfs_session_t *s = userdata;
  if (s->max_write) conn->max_write = s->max_write;
  if (s->max_readahead) conn->max_readahead = s->max_readahead;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  // Plain readdir stays on for seekdir-heavy callers; the kernel picks per call.
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  // No atomic O_TRUNC: with it the kernel invalidates size/mtime after every open with
  // O_TRUNC, so the fstat that cp and friends do right after creating a file costs a
  // round trip. Without it a new file needs no truncate at all and an existing one gets
  // an ordinary setattr(size=0).
  conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (s->writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  else conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // Locks are left to the kernel (local to this mount) until dfs has cluster-wide locks.
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  conn->want &= ~FUSE_CAP_SPLICE_READ;
  conn->want &= ~FUSE_CAP_SPLICE_WRITE;
  conn->want &= ~FUSE_CAP_SPLICE_MOVE;
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  NEW_OR_ENOMEM(OP_LOOKUP);
  r->ino = parent;
  r->name = dup_str(name);
  post(r);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  // dfs keeps no per-inode kernel reference state: inode numbers are never reused.
  fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_GETATTR);
  r->ino = ino;
  r->fh = fi ? fi->fh : 0;
  post(r);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_SETATTR);
  r->ino = ino;
  r->st = *attr;
  r->to_set = to_set;
  r->fh = fi ? fi->fh : 0;
  r->flags = fi ? 1 : 0;
  post(r);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino) {
  NEW_OR_ENOMEM(OP_READLINK);
  r->ino = ino;
  post(r);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  NEW_OR_ENOMEM(OP_MKNOD);
  r->ino = parent;
  r->name = dup_str(name);
  r->mode = mode;
  r->rdev = rdev;
  post(r);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  NEW_OR_ENOMEM(OP_MKDIR);
  r->ino = parent;
  r->name = dup_str(name);
  r->mode = mode;
  post(r);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  NEW_OR_ENOMEM(OP_UNLINK);
  r->ino = parent;
  r->name = dup_str(name);
  post(r);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  NEW_OR_ENOMEM(OP_RMDIR);
  r->ino = parent;
  r->name = dup_str(name);
  post(r);
}

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  NEW_OR_ENOMEM(OP_SYMLINK);
  r->ino = parent;
  r->name = dup_str(name);
  r->name2 = dup_str(link);
  post(r);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags) {
  NEW_OR_ENOMEM(OP_RENAME);
  r->ino = parent;
  r->name = dup_str(name);
  r->ino2 = newparent;
  r->name2 = dup_str(newname);
  r->flags = (int)flags;
  post(r);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  NEW_OR_ENOMEM(OP_LINK);
  r->ino = ino;
  r->ino2 = newparent;
  r->name = dup_str(newname);
  post(r);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_OPEN);
  r->ino = ino;
  r->flags = fi->flags;
  post(r);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_READ);
  r->ino = ino;
  r->size = size;
  r->off = off;
  r->fh = fi->fh;
  post(r);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_WRITE);
  r->ino = ino;
  r->off = off;
  r->fh = fi->fh;
  r->flags = fi->flags;
  // The loop reuses its receive buffer for the next request, so the data is copied;
  // the copy becomes the JS Buffer's memory without a second copy.
  r->data = malloc(size ? size : 1);
  if (!r->data) { fuse_reply_err(req, ENOMEM); free_req(r); return; }
  memcpy(r->data, buf, size);
  r->data_len = size;
  post(r);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_FLUSH);
  r->ino = ino;
  r->fh = fi->fh;
  post(r);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_RELEASE);
  r->ino = ino;
  r->fh = fi->fh;
  r->flags = fi->flags;
  post(r);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_FSYNC);
  r->ino = ino;
  r->fh = fi->fh;
  r->flags = datasync;
  post(r);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_OPENDIR);
  r->ino = ino;
  r->flags = fi->flags;
  post(r);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_READDIR);
  r->ino = ino;
  r->size = size;
  r->off = off;
  r->fh = fi->fh;
  post(r);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_READDIRPLUS);
  r->ino = ino;
  r->size = size;
  r->off = off;
  r->fh = fi->fh;
  post(r);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_RELEASEDIR);
  r->ino = ino;
  r->fh = fi->fh;
  post(r);
}

static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_FSYNCDIR);
  r->ino = ino;
  r->fh = fi->fh;
  r->flags = datasync;
  post(r);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino) {
  NEW_OR_ENOMEM(OP_STATFS);
  r->ino = ino;
  post(r);
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                        int flags) {
  NEW_OR_ENOMEM(OP_SETXATTR);
  r->ino = ino;
  r->name = dup_str(name);
  r->data = malloc(size ? size : 1);
  if (!r->data) { fuse_reply_err(req, ENOMEM); free_req(r); return; }
  memcpy(r->data, value, size);
  r->data_len = size;
  r->flags = flags;
  post(r);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  NEW_OR_ENOMEM(OP_GETXATTR);
  r->ino = ino;
  r->name = dup_str(name);
  r->size = size;
  post(r);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  NEW_OR_ENOMEM(OP_LISTXATTR);
  r->ino = ino;
  r->size = size;
  post(r);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  NEW_OR_ENOMEM(OP_REMOVEXATTR);
  r->ino = ino;
  r->name = dup_str(name);
  post(r);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_CREATE);
  r->ino = parent;
  r->name = dup_str(name);
  r->mode = mode;
  r->flags = fi->flags;
  post(r);
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi) {
  NEW_OR_ENOMEM(OP_FALLOCATE);
  r->ino = ino;
  r->flags = mode;
  r->off = offset;
  r->size = (uint64_t)length;
  r->fh = fi->fh;
  post(r);
}

static const struct fuse_lowlevel_ops dfs_ops = {
  .init = ll_init,
  .lookup = ll_lookup,
  .forget = ll_forget,
  .forget_multi = ll_forget_multi,
  .getattr = ll_getattr,
  .setattr = ll_setattr,
  .readlink = ll_readlink,
  .mknod = ll_mknod,
  .mkdir = ll_mkdir,
  .unlink = ll_unlink,
  .rmdir = ll_rmdir,
  .symlink = ll_symlink,
  .rename = ll_rename,
  .link = ll_link,
  .open = ll_open,
  .read = ll_read,
  .write = ll_write,
  .flush = ll_flush,
  .release = ll_release,
  .fsync = ll_fsync,
  .opendir = ll_opendir,
  .readdir = ll_readdir,
  .readdirplus = ll_readdirplus,
  .releasedir = ll_releasedir,
  .fsyncdir = ll_fsyncdir,
  .statfs = ll_statfs,
  .setxattr = ll_setxattr,
  .getxattr = ll_getxattr,
  .listxattr = ll_listxattr,
  .removexattr = ll_removexattr,
  .create = ll_create,
  .fallocate = ll_fallocate,
};

static void finalize_data(napi_env env, void *data, void *hint) { free(data); }

// Calls the JS handler for one request (or OP_EXIT, with r->req == NULL).
static void call_js(dfs_session_t *s, dfs_req_t *r) {
  napi_env env = s->env;
  // An interrupt notice names a request that JavaScript answers; it is never answered here.
  fuse_req_t answer = r->op == OP_INTERRUPT ? NULL : r->req;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    if (answer) fuse_reply_err(answer, EIO);
    free_req(r);
    return;
  }
  napi_value js_cb = NULL;
  if (napi_get_reference_value(env, s->handler_ref, &js_cb) != napi_ok || js_cb == NULL) {
    if (answer) fuse_reply_err(answer, EIO);
    free_req(r);
    napi_close_handle_scope(env, scope);
    return;
  }
  double *a = s->nums;
  a[A_REQ] = (double)(uintptr_t)r->req;
  a[A_INO] = (double)r->ino;
  a[A_INO2] = (double)r->ino2;
  a[A_SIZE] = (double)r->size;
  a[A_OFF] = (double)r->off;
  a[A_FH] = (double)r->fh;
  a[A_FLAGS] = (double)r->flags;
  a[A_MODE] = (double)r->mode;
  a[A_RDEV] = (double)r->rdev;
  a[A_UID] = (double)r->uid;
  a[A_GID] = (double)r->gid;
  a[A_PID] = (double)r->pid;
  a[A_UMASK] = (double)r->umask;
  a[A_TOSET] = (double)r->to_set;
  a[A_INTR] = (double)r->interrupted;
  if (r->op == OP_SETATTR) {
    a[A_S_MODE] = (double)r->st.st_mode;
    a[A_S_UID] = (double)r->st.st_uid;
    a[A_S_GID] = (double)r->st.st_gid;
    a[A_S_SIZE] = (double)r->st.st_size;
    a[A_S_ATIME_S] = (double)r->st.st_atim.tv_sec;
    a[A_S_ATIME_NS] = (double)r->st.st_atim.tv_nsec;
    a[A_S_MTIME_S] = (double)r->st.st_mtim.tv_sec;
    a[A_S_MTIME_NS] = (double)r->st.st_mtim.tv_nsec;
  }
  napi_value argv[4];
  napi_create_int32(env, r->op, &argv[0]);
  if (r->name) napi_create_string_latin1(env, r->name, NAPI_AUTO_LENGTH, &argv[1]);
  else napi_get_null(env, &argv[1]);
  if (r->name2) napi_create_string_latin1(env, r->name2, NAPI_AUTO_LENGTH, &argv[2]);
  else napi_get_null(env, &argv[2]);
  if (r->data) {
    if (napi_create_external_buffer(env, r->data_len, r->data, finalize_data, NULL, &argv[3]) == napi_ok) {
      r->data = NULL; // owned by the Buffer now
    } else {
      napi_get_null(env, &argv[3]);
    }
  } else {
    napi_get_null(env, &argv[3]);
  }
  napi_value global;
  napi_get_global(env, &global);
  napi_value result;
  napi_status st = napi_make_callback(env, s->async_ctx, global, js_cb, 4, argv, &result);
  if (st == napi_pending_exception) {
    // A handler must never throw; if it did, answer EIO and report it on the JS side.
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    if (answer) fuse_reply_err(answer, EIO);
    napi_fatal_exception(env, exc);
  }
  free_req(r);
  napi_close_handle_scope(env, scope);
}

static void stop_polling(dfs_session_t *s) {
  if (s->polling) {
    uv_poll_stop(&s->poll);
    s->polling = 0;
  }
}

// /dev/fuse is readable: read and dispatch up to REQUESTS_PER_WAKEUP requests.
static void on_readable(uv_poll_t *handle, int status, int events) {
  dfs_session_t *s = handle->data;
  for (int i = 0; i < REQUESTS_PER_WAKEUP && s->polling; i++) {
    int res = fuse_session_receive_buf(s->se, &s->fbuf);
    if (res == -EAGAIN) return;
    if (res == -EINTR) continue;
    if (res <= 0) {
      // 0: the kernel ended the session (unmounted from outside); < 0: a read error.
      stop_polling(s);
      dfs_req_t *r = calloc(1, sizeof(dfs_req_t));
      if (r) {
        r->op = OP_EXIT;
        r->off = res;
        call_js(s, r);
      }
      return;
    }
    fuse_session_process_buf(s->se, &s->fbuf);
  }
}

static dfs_session_t *get_session(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

static fuse_req_t get_req(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return (fuse_req_t)(uintptr_t)d;
}

static char *get_string_latin1(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_latin1(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *buf = malloc(len + 1);
  if (!buf) return NULL;
  napi_get_value_string_latin1(env, v, buf, len + 1, &len);
  return buf;
}

// mount(mountpoint, optionsString, maxWrite, maxReadahead, writebackCache, numsFloat64Array, handler) -> session
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) { napi_throw_type_error(env, NULL, "mount: 7 arguments expected"); return NULL; }
  char *mountpoint = get_string_latin1(env, argv[0]);
  char *opts = get_string_latin1(env, argv[1]);
  uint32_t max_write = 0, max_readahead = 0;
  bool writeback = false;
  napi_get_value_uint32(env, argv[2], &max_write);
  napi_get_value_uint32(env, argv[3], &max_readahead);
  napi_get_value_bool(env, argv[4], &writeback);

  napi_typedarray_type ta_type;
  size_t ta_len;
  void *ta_data;
  napi_value ab;
  size_t ab_off;
  if (napi_get_typedarray_info(env, argv[5], &ta_type, &ta_len, &ta_data, &ab, &ab_off) != napi_ok ||
      ta_type != napi_float64_array || ta_len < A_COUNT) {
    free(mountpoint); free(opts);
    napi_throw_type_error(env, NULL, "mount: args must be a Float64Array of sufficient length");
    return NULL;
  }

  dfs_session_t *s = calloc(1, sizeof(dfs_session_t));
  if (!s) { free(mountpoint); free(opts); napi_throw_error(env, NULL, "out of memory"); return NULL; }
  s->env = env;
  s->nums = ta_data;
  s->max_write = max_write;
  s->max_readahead = max_readahead;
  s->writeback_cache = writeback;

  char *fargv[3] = { "dfs", "-o", opts };
  struct fuse_args args = FUSE_ARGS_INIT(opts && opts[0] ? 3 : 1, fargv);
  s->se = fuse_session_new(&args, &dfs_ops, sizeof(dfs_ops), s);
  if (!s->se) {
    free(mountpoint); free(opts); free(s);
    napi_throw_error(env, "EINVAL", "fuse_session_new failed (bad mount options?)");
    return NULL;
  }
  if (fuse_session_mount(s->se, mountpoint) != 0) {
    fuse_session_destroy(s->se);
    free(mountpoint); free(opts); free(s);
    napi_throw_error(env, "EMOUNT", "fuse_session_mount failed (see stderr)");
    return NULL;
  }
  free(mountpoint);
  free(opts);

  int fd = fuse_session_fd(s->se);
  int fl = fcntl(fd, F_GETFL);
  uv_loop_t *loop = NULL;
  napi_value name;
  napi_create_string_utf8(env, "dfs_fuse", NAPI_AUTO_LENGTH, &name);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || napi_get_uv_event_loop(env, &loop) != napi_ok ||
      uv_poll_init(loop, &s->poll, fd) != 0) {
    fuse_session_unmount(s->se);
    fuse_session_destroy(s->se);
    free(s);
    napi_throw_error(env, NULL, "cannot watch /dev/fuse with libuv");
    return NULL;
  }
  s->poll.data = s;
  napi_create_reference(env, argv[5], 1, &s->nums_ref);
  napi_create_reference(env, argv[6], 1, &s->handler_ref);
  napi_async_init(env, NULL, name, &s->async_ctx);
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  s->polling = 1;
  napi_value ext;
  CHECK(env, napi_create_external(env, s, NULL, NULL, &ext));
  return ext;
}

static void on_poll_closed(uv_handle_t *handle) {
  dfs_session_t *s = handle->data;
  if (s->se) {
    fuse_session_unmount(s->se);
    fuse_session_destroy(s->se);
    s->se = NULL;
  }
  free(s->fbuf.mem);
  free(s);
}

// unmount(session): stop reading and detach the mount (lazily: the kernel keeps the
// connection while files are open; closing our /dev/fuse fd then ends it). The session
// is finished; JavaScript calls destroy(session) next.
static napi_value js_unmount(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  dfs_session_t *s = get_session(env, argv[0]);
  if (!s || !s->se) return NULL;
  stop_polling(s);
  fuse_session_exit(s->se);
  fuse_session_unmount(s->se);
  return NULL;
}

// destroy(session): release everything; safe after unmount() or after OP_EXIT. Freed
// once libuv has closed the poll handle.
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  dfs_session_t *s = get_session(env, argv[0]);
  if (!s || !s->handler_ref) return NULL;
  stop_polling(s);
  napi_delete_reference(env, s->handler_ref);
  s->handler_ref = NULL;
  napi_delete_reference(env, s->nums_ref);
  napi_async_destroy(env, s->async_ctx);
  uv_close((uv_handle_t *)&s->poll, on_poll_closed);
  return NULL;
}

static void fill_stat(const double *a, struct stat *st) {
  memset(st, 0, sizeof(*st));
  st->st_ino = (ino_t)a[0];
  st->st_mode = (mode_t)a[1];
  st->st_nlink = (nlink_t)a[2];
  st->st_uid = (uid_t)a[3];
  st->st_gid = (gid_t)a[4];
  st->st_rdev = (dev_t)a[5];
  st->st_size = (off_t)a[6];
  st->st_blocks = (blkcnt_t)a[7];
  st->st_atim.tv_sec = (time_t)a[8];
  st->st_atim.tv_nsec = (long)a[9];
  st->st_mtim.tv_sec = (time_t)a[10];
  st->st_mtim.tv_nsec = (long)a[11];
  st->st_ctim.tv_sec = (time_t)a[12];
  st->st_ctim.tv_nsec = (long)a[13];
  st->st_blksize = (blksize_t)a[14];
}

static const double *get_f64(napi_env env, napi_value v, size_t min_len) {
  napi_typedarray_type t;
  size_t len;
  void *data;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, &len, &data, &ab, &off) != napi_ok || t != napi_float64_array ||
      len < min_len)
    return NULL;
  return data;
}

#define REPLY_ARGS(n)                                              \
  size_t argc = (n);                                               \
  napi_value argv[(n) > 0 ? (n) : 1];                              \
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL)); \
  fuse_req_t req = get_req(env, argv[0]);

static napi_value ret_int(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

// replyErr(req, errno): errno 0 means success with no data.
static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  REPLY_ARGS(2);
  int32_t err = 0;
  napi_get_value_int32(env, argv[1], &err);
  return ret_int(env, fuse_reply_err(req, err));
}

// replyEntry(req, attr Float64Array[15], entryTimeoutS, attrTimeoutS)
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  REPLY_ARGS(4);
  const double *a = get_f64(env, argv[1], ATTR_FIELDS);
  if (!a) return ret_int(env, fuse_reply_err(req, EIO));
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  fill_stat(a, &e.attr);
  e.ino = e.attr.st_ino;
  napi_get_value_double(env, argv[2], &e.entry_timeout);
  napi_get_value_double(env, argv[3], &e.attr_timeout);
  return ret_int(env, fuse_reply_entry(req, &e));
}

// replyNegative(req, entryTimeoutS): ENOENT that the kernel may cache.
static napi_value js_reply_negative(napi_env env, napi_callback_info info) {
  REPLY_ARGS(2);
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  napi_get_value_double(env, argv[1], &e.entry_timeout);
  return ret_int(env, fuse_reply_entry(req, &e));
}

static void set_open_flags(struct fuse_file_info *fi, uint32_t flags) {
  fi->direct_io = (flags & 1) != 0;
  fi->keep_cache = (flags & 2) != 0;
  fi->nonseekable = (flags & 4) != 0;
}

// replyCreate(req, attr, entryTimeoutS, attrTimeoutS, fh, openFlags)
static napi_value js_reply_create(napi_env env, napi_callback_info info) {
  REPLY_ARGS(6);
  const double *a = get_f64(env, argv[1], ATTR_FIELDS);
  if (!a) return ret_int(env, fuse_reply_err(req, EIO));
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  fill_stat(a, &e.attr);
  e.ino = e.attr.st_ino;
  napi_get_value_double(env, argv[2], &e.entry_timeout);
  napi_get_value_double(env, argv[3], &e.attr_timeout);
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof(fi));
  double fh = 0;
  uint32_t flags = 0;
  napi_get_value_double(env, argv[4], &fh);
  napi_get_value_uint32(env, argv[5], &flags);
  fi.fh = (uint64_t)fh;
  set_open_flags(&fi, flags);
  return ret_int(env, fuse_reply_create(req, &e, &fi));
}

// replyAttr(req, attr, attrTimeoutS)
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  REPLY_ARGS(3);
  const double *a = get_f64(env, argv[1], ATTR_FIELDS);
  if (!a) return ret_int(env, fuse_reply_err(req, EIO));
  struct stat st;
  fill_stat(a, &st);
  double timeout = 0;
  napi_get_value_double(env, argv[2], &timeout);
  return ret_int(env, fuse_reply_attr(req, &st, timeout));
}

// replyReadlink(req, latin1 string)
static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  REPLY_ARGS(2);
  char *s = get_string_latin1(env, argv[1]);
  if (!s) return ret_int(env, fuse_reply_err(req, EIO));
  int res = fuse_reply_readlink(req, s);
  free(s);
  return ret_int(env, res);
}

// replyOpen(req, fh, openFlags)
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  REPLY_ARGS(3);
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof(fi));
  double fh = 0;
  uint32_t flags = 0;
  napi_get_value_double(env, argv[1], &fh);
  napi_get_value_uint32(env, argv[2], &flags);
  fi.fh = (uint64_t)fh;
  set_open_flags(&fi, flags);
  return ret_int(env, fuse_reply_open(req, &fi));
}

// replyWrite(req, count)
static napi_value js_reply_write(napi_env env, napi_callback_info info) {
  REPLY_ARGS(2);
  double n = 0;
  napi_get_value_double(env, argv[1], &n);
  return ret_int(env, fuse_reply_write(req, (size_t)n));
}

// replyBuf(req, Buffer | null)
static napi_value js_reply_buf(napi_env env, napi_callback_info info) {
  REPLY_ARGS(2);
  void *data = NULL;
  size_t len = 0;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_null && t != napi_undefined) {
    if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) return ret_int(env, fuse_reply_err(req, EIO));
  }
  return ret_int(env, fuse_reply_buf(req, data, len));
}

// replyBufs(req, Buffer[]): a read answered from several buffers without joining them.
static napi_value js_reply_bufs(napi_env env, napi_callback_info info) {
  REPLY_ARGS(2);
  uint32_t n = 0;
  napi_get_array_length(env, argv[1], &n);
  if (n > 64) return ret_int(env, fuse_reply_err(req, EIO));
  struct iovec iov[64];
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    napi_get_element(env, argv[1], i, &el);
    if (napi_get_buffer_info(env, el, &iov[i].iov_base, &iov[i].iov_len) != napi_ok)
      return ret_int(env, fuse_reply_err(req, EIO));
  }
  return ret_int(env, fuse_reply_iov(req, iov, (int)n));
}

// replyXattrSize(req, size)
static napi_value js_reply_xattr(napi_env env, napi_callback_info info) {
  REPLY_ARGS(2);
  double n = 0;
  napi_get_value_double(env, argv[1], &n);
  return ret_int(env, fuse_reply_xattr(req, (size_t)n));
}

// replyStatfs(req, Float64Array[bsize, frsize, blocks, bfree, bavail, files, ffree, favail, namemax])
static napi_value js_reply_statfs(napi_env env, napi_callback_info info) {
  REPLY_ARGS(2);
  const double *a = get_f64(env, argv[1], 9);
  if (!a) return ret_int(env, fuse_reply_err(req, EIO));
  struct statvfs sv;
  memset(&sv, 0, sizeof(sv));
  sv.f_bsize = (unsigned long)a[0];
  sv.f_frsize = (unsigned long)a[1];
  sv.f_blocks = (fsblkcnt_t)a[2];
  sv.f_bfree = (fsblkcnt_t)a[3];
  sv.f_bavail = (fsblkcnt_t)a[4];
  sv.f_files = (fsfilcnt_t)a[5];
  sv.f_ffree = (fsfilcnt_t)a[6];
  sv.f_favail = (fsfilcnt_t)a[7];
  sv.f_namemax = (unsigned long)a[8];
  return ret_int(env, fuse_reply_statfs(req, &sv));
}

// replyDir(req, size, plus, names[], nums Float64Array) -> entries that fit.
// Per entry, plain: [nextOff, ino, mode]; plus: [nextOff, entryTimeoutS, attrTimeoutS, attr x15].
static napi_value js_reply_dir(napi_env env, napi_callback_info info) {
  REPLY_ARGS(5);
  double size_d = 0;
  bool plus = false;
  napi_get_value_double(env, argv[1], &size_d);
  napi_get_value_bool(env, argv[2], &plus);
  uint32_t n = 0;
  napi_get_array_length(env, argv[3], &n);
  size_t stride = plus ? 3 + ATTR_FIELDS : 3;
  const double *nums = get_f64(env, argv[4], (size_t)n * stride);
  size_t size = (size_t)size_d;
  char *buf = malloc(size ? size : 1);
  if (!buf || (n > 0 && !nums)) { free(buf); fuse_reply_err(req, EIO); return ret_int(env, -1); }
  size_t used = 0;
  uint32_t added = 0;
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    napi_get_element(env, argv[3], i, &el);
    char name[1024];
    size_t nlen = 0;
    if (napi_get_value_string_latin1(env, el, name, sizeof(name), &nlen) != napi_ok) break;
    const double *e = nums + i * stride;
    size_t need;
    if (plus) {
      struct fuse_entry_param ep;
      memset(&ep, 0, sizeof(ep));
      fill_stat(e + 3, &ep.attr);
      ep.ino = ep.attr.st_ino;
      ep.entry_timeout = e[1];
      ep.attr_timeout = e[2];
      need = fuse_add_direntry_plus(req, buf + used, size - used, name, &ep, (off_t)e[0]);
    } else {
      struct stat st;
      memset(&st, 0, sizeof(st));
      st.st_ino = (ino_t)e[1];
      st.st_mode = (mode_t)e[2];
      need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)e[0]);
    }
    if (need > size - used) break;
    used += need;
    added++;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
  return ret_int(env, (int)added);
}

// replyNone(req): for requests that take no answer.
static napi_value js_reply_none(napi_env env, napi_callback_info info) {
  REPLY_ARGS(1);
  fuse_reply_none(req);
  return NULL;
}

#define EXPORT_FN(name, fn)                                                  \
  do {                                                                       \
    napi_value f;                                                            \
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);         \
    napi_set_named_property(env, exports, name, f);                          \
  } while (0)

static napi_value init_module(napi_env env, napi_value exports) {
  EXPORT_FN("mount", js_mount);
  EXPORT_FN("unmount", js_unmount);
  EXPORT_FN("destroy", js_destroy);
  EXPORT_FN("replyErr", js_reply_err);
  EXPORT_FN("replyEntry", js_reply_entry);
  EXPORT_FN("replyNegative", js_reply_negative);
  EXPORT_FN("replyCreate", js_reply_create);
  EXPORT_FN("replyAttr", js_reply_attr);
  EXPORT_FN("replyReadlink", js_reply_readlink);
  EXPORT_FN("replyOpen", js_reply_open);
  EXPORT_FN("replyWrite", js_reply_write);
  EXPORT_FN("replyBuf", js_reply_buf);
  EXPORT_FN("replyBufs", js_reply_bufs);
  EXPORT_FN("replyXattr", js_reply_xattr);
  EXPORT_FN("replyStatfs", js_reply_statfs);
  EXPORT_FN("replyDir", js_reply_dir);
  EXPORT_FN("replyNone", js_reply_none);
  napi_value n;
  napi_create_uint32(env, A_COUNT, &n);
  napi_set_named_property(env, exports, "ARG_COUNT", n);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init_module)
