/*
 * reload.c: hot reload (validate, then swap generations), the file watcher,
 * and the ixr.* control events.
 *
 * A reload builds a whole new generation (standard library and every
 * strategy, each in a fresh sandboxed environment and a fresh module
 * cache) while the old one keeps its state untouched. Only if every file
 * loads and validates does the new generation go into service, in one
 * assignment between two events. Otherwise it is thrown away, the old
 * module cache is put back, and the errors are reported: a broken file
 * never replaces a working one, and nothing is half-applied.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <sys/stat.h>

#include "internal.h"

static double ms_since(uint64_t t0) {
  return (double)(uv_hrtime() - t0) / 1e6;
}

static int reload(ixr_runtime *rt, ixr_reload_result *res, const uint64_t *files_fp);

int ixr_reload(ixr_runtime *rt, ixr_reload_result *res) { return reload(rt, res, NULL); }

/* files_fp: the watch's fingerprint of the files, taken just now (NULL:
 * taken here when watching). */
static int reload(ixr_runtime *rt, ixr_reload_result *res, const uint64_t *files_fp) {
  ixr_reload_result local;
  if (res == NULL) res = &local;
  memset(res, 0, sizeof(*res));
  if (rt == NULL) return IXR_EINVAL;
  if (rt->closing) return IXR_ECLOSED;
  res->generation = rt->generation;
  /* Not from an output callback, nor from a C function a strategy called:
   * the strategies would change under the running code. */
  if (rt->in_output > 0 || rt->call_thread != NULL || rt->in_setup ||
      rt->loading > 0)
    return IXR_EBUSY;
  uint64_t t0 = uv_hrtime();
  int saved = ixr__modules_save(rt);
  /* While watching: the files as this reload reads them, so that the
   * watch does not reload them again (SIGHUP after an edit). */
  uint64_t fp = files_fp != NULL ? *files_fp
                : rt->watch != NULL ? ixr__files_fingerprint(rt) : 0;
  ixr__generation g;
  int problems = ixr__generation_build(rt, &g);
  res->files = g.files;
  res->changed = ixr__generation_changes(rt, &g);
  if (problems != 0) {
    size_t n = g.errors.len < sizeof(res->errors) - 1
                   ? g.errors.len
                   : ixr__utf8_cut(g.errors.data, sizeof(res->errors) - 1);
    memcpy(res->errors, g.errors.data, n);
    res->errors[n] = '\0';
    ixr__generation_discard(rt, &g);
    ixr__modules_restore(rt, saved);
    res->ok = 0;
  } else {
    luaL_unref(rt->L, LUA_REGISTRYINDEX, saved);
    ixr__generation_install(rt, &g);
    res->ok = 1;
    /* Without a watch the files are not looked at: ixr_watch, later,
     * takes them as they are then. */
    rt->loaded_fp_valid = rt->watch != NULL;
    rt->loaded_fp = fp;
  }
  if (rt->watch != NULL) ixr__watch_saw(rt, fp);
  res->generation = rt->generation;
  res->ms = ms_since(t0);
  rt->last_reload = *res;
  rt->reloaded_once = true;
  ixr__gc_after_work(rt); /* the old generation's garbage, paced */
  if (res->ok)
    ixr__log(rt, IXR_LOG_INFO,
             "reload: generation %llu in service: %u files, %u strategies "
             "changed, %.2f ms",
             (unsigned long long)res->generation, res->files, res->changed,
             res->ms);
  else {
    ixr__log(rt, IXR_LOG_ERROR,
             "reload rejected, generation %llu keeps serving (%u files, %.2f "
             "ms):",
             (unsigned long long)res->generation, res->files, res->ms);
    ixr__log_lines(rt, IXR_LOG_ERROR, "reload rejected: ", res->errors,
                   strlen(res->errors));
  }
  /* closed by a host function a strategy file called while loading */
  if (ixr__leave(rt) || rt->close_requested) return IXR_ECLOSED;
  return res->ok ? 0 : IXR_ESTRATEGY;
}

/* ---- control events --------------------------------------------------- */

static void reply(ixr_runtime *rt, ixr__sink *from, const char *name,
                  int id_idx, void (*fill)(ixr_runtime *, ixr__jw *)) {
  ixr__jw *w = rt->jw;
  ixr__jw_begin(w);
  ixr__jw_str(w, "type", "reply", 5);
  ixr__jw_str(w, "name", name, strlen(name));
  if (id_idx != 0) {
    char err[64];
    ixr__jw_lua(w, "id", rt->L, id_idx, err, sizeof(err));
  }
  fill(rt, w);
  ixr_output out;
  memset(&out, 0, sizeof(out));
  ixr__jw_end(w, &out.json, &out.json_len);
  out.type = IXR_OUT_REPLY;
  ixr__sinkref to = {0, 0};
  if (from != NULL && from->open) to = ixr__sink_ref(from);
  ixr__emit(rt, to, &out);
}

static void fill_reload(ixr_runtime *rt, ixr__jw *w) {
  const ixr_reload_result *r = &rt->last_reload;
  ixr__jw_bool(w, "ok", r->ok);
  ixr__jw_int(w, "generation", (int64_t)r->generation);
  ixr__jw_int(w, "files", r->files);
  ixr__jw_int(w, "changed", r->changed);
  ixr__jw_double(w, "ms", r->ms);
  if (!r->ok) ixr__jw_str(w, "errors", r->errors, strlen(r->errors));
}

static void fill_status(ixr_runtime *rt, ixr__jw *w) {
  ixr_stats st;
  ixr_get_stats(rt, &st);
  ixr__jw_int(w, "generation", (int64_t)st.generation);
  ixr__jw_int(w, "sessions_active", (int64_t)st.sessions_active);
  ixr__jw_int(w, "sessions_suspended", (int64_t)st.sessions_suspended);
  ixr__jw_int(w, "sessions_started", (int64_t)st.sessions_started);
  ixr__jw_int(w, "sessions_ended", (int64_t)st.sessions_ended);
  ixr__jw_int(w, "events_in", (int64_t)st.events_in);
  ixr__jw_int(w, "lines_out", (int64_t)st.lines_out);
  ixr__jw_int(w, "errors", (int64_t)st.errors);
  ixr__jw_int(w, "held_dropped", (int64_t)st.held_dropped);
  ixr__jw_int(w, "lua_bytes", (int64_t)st.lua_bytes);
  ixr__jw_int(w, "max_memory", (int64_t)rt->opt.max_memory);
  ixr__jw_int(w, "limit_kills", (int64_t)st.limit_kills);
  ixr__jw_int(w, "gc_cycles", (int64_t)st.gc_cycles);
  ixr__jw_int(w, "gc_ms", (int64_t)(st.gc_ns / 1000000));
  ixr__jw_int(w, "gc_pause_max_us", (int64_t)(st.gc_pause_max_ns / 1000));
  ixr__jw_int(w, "gc_pause_last_cycle_us",
              (int64_t)(st.gc_pause_last_cycle_ns / 1000));
  if (rt->reloaded_once) {
    const ixr_reload_result *r = &rt->last_reload;
    ixr__jw_bool(w, "last_reload_ok", r->ok);
    ixr__jw_double(w, "last_reload_ms", r->ms);
    if (!r->ok)
      ixr__jw_str(w, "last_reload_errors", r->errors, strlen(r->errors));
  }
}

void ixr__control(ixr_runtime *rt, ixr__sink *from, const char *name,
                  uint64_t lineno, int id_idx) {
  if (strcmp(name, "ixr.reload") == 0) {
    ixr_reload_result r;
    ixr_reload(rt, &r);
    reply(rt, from, name, id_idx, fill_reload);
    return;
  }
  if (strcmp(name, "ixr.status") == 0) {
    reply(rt, from, name, id_idx, fill_status);
    return;
  }
  char msg[160];
  snprintf(msg, sizeof(msg), "unknown control event '%.64s' (known: %sixr.reload, ixr.status)",
           name, from != NULL && from->control_only ? "" : "clock.advance, ");
  ixr__emit_error(rt, from, NULL, "bad_event", msg, lineno, id_idx, NULL);
}

/* ---- the watcher ------------------------------------------------------ */

typedef struct watcher watcher;

/* One directory watched. */
typedef struct watched {
  uv_fs_event_t h; /* first: the handle's memory is this struct */
  watcher *w;
  int depth;       /* 0: the handlers or lua dir itself */
  char *path;
  /* A parent watch: the directory that holds a top directory, which is
   * replaced (mv new handlers, a symlink switched) under this name; top is
   * that directory's path. NULL for the others. */
  char *child;
  const char *top;
  /* Where symlinked .lua files lead: any change there is looked at; no
   * directory under it is watched. */
  bool link;
} watched;

struct watcher {
  ixr_runtime *rt;
  uv_timer_t debounce;
  watched **dirs;
  int ndirs, cap;
  unsigned debounce_ms;
  unsigned open;        /* handles whose close callback is pending */
  uint64_t files_fp;    /* the .lua files as of the last look (fingerprint) */
  uint64_t burst_start; /* loop time of the first event not looked at yet */
  int walk;             /* directories of the current watch_tree walk */
};

/* A burst of writes puts the look off at most this long: a file written
 * to without end (a log, an editor's swap file) must not put a reload
 * off for ever. */
#define WATCH_MAX_WAIT_MS 1000

static int watch_tree(watcher *w, const char *dir, int depth);
static void watch_link_target(watcher *w, const char *link);
static void on_debounced(uv_timer_t *t);

/* A name a strategy or module file can have: NAME.lua, not an editor's
 * swap, backup or lock file (.x.lua.swp, .#x.lua, #x.lua#, x.lua~). */
static bool lua_file_name(const char *n) {
  size_t len = strlen(n);
  return len > 4 && n[0] != '.' && n[0] != '#' && strcmp(n + len - 4, ".lua") == 0;
}

/* FNV-1a over the names and bytes of every .lua file under dir. */
static uint64_t fingerprint_dir(const char *dir, int depth, uint64_t h, int *dirs) {
  DIR *d = opendir(dir);
  if (d == NULL) return h;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
      continue;
    struct stat sb;
    if (stat(path, &sb) != 0) continue;
    if (S_ISDIR(sb.st_mode)) {
      /* the directories a load reads (capture_dir), no others */
      if (depth < IXR__MODULE_DEPTH && ixr__module_dir_ok(e->d_name) &&
          ++*dirs <= IXR__MAX_WALK_DIRS)
        h = fingerprint_dir(path, depth + 1, h, dirs);
      continue;
    }
    if (!S_ISREG(sb.st_mode) || !lua_file_name(e->d_name)) continue;
    /* the name, then the bytes: a rename is a change too */
    for (const char *c = path; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    FILE *f = fopen(path, "rb");
    if (f == NULL) continue;
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
      for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)buf[i]) * 1099511628211ull;
    fclose(f);
  }
  closedir(d);
  return h;
}

/* Directory order differs between file systems, not between two looks at
 * the same one: a fingerprint is only compared with the last one. */
static uint64_t fingerprint(ixr_runtime *rt) {
  uint64_t h = 14695981039346656037ull;
  int dirs = 0;
  h = fingerprint_dir(rt->handlers_dir, 0, h, &dirs);
  dirs = 0;
  return fingerprint_dir(rt->lua_dir, 0, h, &dirs);
}

uint64_t ixr__files_fingerprint(ixr_runtime *rt) { return fingerprint(rt); }

/* Looks again debounce_ms after this event, but no later than
 * WATCH_MAX_WAIT_MS after the first event not looked at yet. */
static void look_later(watcher *w) {
  uint64_t now = uv_now(w->rt->loop);
  if (!uv_is_active((uv_handle_t *)&w->debounce)) w->burst_start = now;
  uint64_t limit = w->burst_start + (w->debounce_ms > WATCH_MAX_WAIT_MS
                                         ? w->debounce_ms
                                         : WATCH_MAX_WAIT_MS);
  uint64_t due = now + w->debounce_ms;
  if (due > limit) due = limit > now ? limit : now;
  uv_timer_start(&w->debounce, on_debounced, due - now, 0);
}

static void on_dir_closed(uv_handle_t *h);
static void on_fs_event(uv_fs_event_t *h, const char *file, int events, int status);

/* Handles of directories that are gone (removed, moved out of the tree):
 * closed, so that a tree whose directories come and go does not pile up
 * handles until inotify's limit. Top directories and their parents stay:
 * they are watched by path. Called at each look. */
static void prune(watcher *w) {
  int kept = 0;
  for (int i = 0; i < w->ndirs; i++) {
    watched *d = w->dirs[i];
    struct stat sb;
    bool gone = d->child == NULL && (d->depth > 0 || d->link) &&
                (stat(d->path, &sb) != 0 || !S_ISDIR(sb.st_mode));
    if (gone) {
      uv_close((uv_handle_t *)&d->h, on_dir_closed);
      continue;
    }
    /* Where a link leads may be a new directory under the same path
     * (replaced while the link stayed): watched again. */
    if (d->link) {
      uv_fs_event_stop(&d->h);
      uv_fs_event_start(&d->h, on_fs_event, d->path, 0);
    }
    w->dirs[kept++] = d;
  }
  w->ndirs = kept;
}

static void on_debounced(uv_timer_t *t) {
  watcher *w = t->data;
  ixr_runtime *rt = w->rt;
  prune(w);
  /* Saving often touches a file without changing it, or writes an
   * editor's own files beside it: reload (which resets module state) only
   * when the name or the bytes of a .lua file changed. */
  uint64_t fp = fingerprint(rt);
  if (fp == w->files_fp) {
    ixr__log(rt, IXR_LOG_DEBUG, "watch: no .lua file changed: not reloading");
    return;
  }
  rt->in_uv_cb++;
  ixr__log(rt, IXR_LOG_INFO, "watch: files changed: reloading");
  reload(rt, NULL, &fp); /* takes fp as the files looked at */
  rt->in_uv_cb--;
  ixr__leave(rt);
}

static void on_fs_event(uv_fs_event_t *h, const char *file, int events,
                        int status) {
  watched *d = (watched *)h;
  watcher *w = d->w;
  (void)events;
  if (status < 0) {
    ixr__log(w->rt, IXR_LOG_WARN, "watch: %s", uv_strerror(status));
    return;
  }
  if (d->child != NULL) {
    /* The parent of a top directory: only that name matters. Replaced
     * (mv, a symlink switched), it is watched again where the path now
     * leads, and looked at. */
    if (file == NULL || strcmp(file, d->child) != 0) return;
    struct stat tb;
    if (stat(d->top, &tb) == 0 && S_ISDIR(tb.st_mode) &&
        watch_tree(w, d->top, 0) != 0)
      ixr__log(w->rt, IXR_LOG_WARN, "watch: cannot watch %s", d->top);
    look_later(w);
    return;
  }
  /* A directory created (or created again) is watched from now on; so is
   * where a .lua file made a symlink (or switched to another target) leads. */
  char path[4096];
  struct stat sb, lb;
  if (!d->link && file != NULL && file[0] != '.' &&
      snprintf(path, sizeof(path), "%s/%s", d->path, file) < (int)sizeof(path) &&
      stat(path, &sb) == 0) {
    if (S_ISDIR(sb.st_mode) && ixr__module_dir_ok(file) && d->depth < IXR__MODULE_DEPTH &&
        watch_tree(w, path, d->depth + 1) != 0)
      ixr__log(w->rt, IXR_LOG_WARN, "watch: cannot watch %s", path);
    else if (S_ISREG(sb.st_mode) && lua_file_name(file) && lstat(path, &lb) == 0 &&
             S_ISLNK(lb.st_mode))
      watch_link_target(w, path);
  }
  /* Any event puts the look off (one look per burst of writes, see
   * look_later); the look reloads only if a .lua file's name or bytes
   * changed, which also covers a directory moved away. */
  look_later(w);
}

static void on_dir_closed(uv_handle_t *h) {
  watched *d = (watched *)h;
  watcher *w = d->w;
  ixr_runtime *rt = w->rt;
  free(d->path);
  free(d->child);
  free(d);
  if (--w->open == 0) {
    free(w->dirs);
    free(w);
  }
  ixr__handle_closed(rt);
}

/* Watches dir. One watched already under this path is watched again: the
 * directory may have been removed and made anew (inotify follows the old
 * one, gone). */
static bool same_role(const watched *d, const char *child, bool link) {
  if (d->link != link) return false;
  if (d->child == NULL || child == NULL) return d->child == child;
  return strcmp(d->child, child) == 0;
}

/* Watches dir in a role: a tree's directory (child NULL, not link), the
 * parent of a top directory (child: its name there; top: its path) or
 * where symlinks lead (link). One path may be watched in several roles,
 * one handle each. */
static int watch_dir_as(watcher *w, const char *dir, int depth, const char *child,
                        const char *top, bool link) {
  for (int i = 0; i < w->ndirs; i++)
    if (strcmp(w->dirs[i]->path, dir) == 0 && same_role(w->dirs[i], child, link)) {
      uv_fs_event_stop(&w->dirs[i]->h);
      return uv_fs_event_start(&w->dirs[i]->h, on_fs_event, dir, 0) == 0 ? 0 : IXR_EIO;
    }
  if (w->ndirs == w->cap) {
    int cap = w->cap ? w->cap * 2 : 16;
    watched **v = realloc(w->dirs, (size_t)cap * sizeof(*v));
    if (v == NULL) return IXR_ENOMEM;
    w->dirs = v;
    w->cap = cap;
  }
  watched *d = calloc(1, sizeof(*d));
  if (d == NULL || (d->path = strdup(dir)) == NULL) {
    free(d);
    return IXR_ENOMEM;
  }
  d->w = w;
  d->depth = depth;
  d->link = link;
  d->top = top;
  if (child != NULL && (d->child = strdup(child)) == NULL) {
    free(d->path);
    free(d);
    return IXR_ENOMEM;
  }
  if (uv_fs_event_init(w->rt->loop, &d->h) != 0) {
    free(d->child);
    free(d->path);
    free(d);
    return IXR_EIO;
  }
  w->dirs[w->ndirs++] = d;
  w->open++;
  w->rt->open_handles++;
  uv_unref((uv_handle_t *)&d->h); /* watching keeps no loop alive */
  int rc = uv_fs_event_start(&d->h, on_fs_event, dir, 0);
  if (rc != 0) {
    /* A parent that cannot be watched costs only the following of its
     * top directory being replaced (see watch_parent). */
    ixr__log(w->rt, child != NULL ? IXR_LOG_DEBUG : IXR_LOG_WARN,
             "watch: cannot watch %s: %s", dir, uv_strerror(rc));
    return IXR_EIO;
  }
  return 0;
}

static int watch_dir(watcher *w, const char *dir, int depth) {
  return watch_dir_as(w, dir, depth, NULL, NULL, false);
}

/* The directory a .lua file that is a symlink leads to: edited there, the
 * file changes with no event in the directories watched. Watched as deep
 * as it goes (nothing under it is watched). */
static void watch_link_target(watcher *w, const char *link) {
  char *real = realpath(link, NULL);
  if (real == NULL) return;
  char *slash = strrchr(real, '/');
  if (slash != NULL) {
    if (slash == real) slash[1] = '\0';
    else *slash = '\0';
    /* Watched again if it was already: the directory may be a new one
     * under the same path. */
    if (watch_dir_as(w, real, IXR__MODULE_DEPTH, NULL, NULL, true) != 0)
      ixr__log(w->rt, IXR_LOG_WARN, "watch: cannot watch %s (where %s leads)", real, link);
  }
  free(real);
}

/* The directory and its subdirectories that can hold modules, down to
 * IXR__MODULE_DEPTH. Only the top one failing fails the watch: a
 * subdirectory that cannot be watched is warned of. */
static int walk_tree(watcher *w, const char *dir, int depth);

static int watch_tree(watcher *w, const char *dir, int depth) {
  w->walk = 0;
  return walk_tree(w, dir, depth);
}

static int walk_tree(watcher *w, const char *dir, int depth) {
  int rc = watch_dir(w, dir, depth);
  if (rc != 0 || depth >= IXR__MODULE_DEPTH) return rc;
  DIR *dh = opendir(dir);
  if (dh == NULL) {
    ixr__log(w->rt, IXR_LOG_WARN, "watch: cannot read %s: %s", dir, strerror(errno));
    return 0;
  }
  struct dirent *e;
  while ((e = readdir(dh)) != NULL && rc == 0) {
    if (e->d_name[0] == '.') continue;
    char sub[4096];
    if (snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= (int)sizeof(sub))
      continue;
    struct stat sb, lb;
    if (stat(sub, &sb) != 0) continue;
    if (S_ISDIR(sb.st_mode)) {
      if (ixr__module_dir_ok(e->d_name) && ++w->walk <= IXR__MAX_WALK_DIRS &&
          walk_tree(w, sub, depth + 1) != 0)
        ixr__log(w->rt, IXR_LOG_WARN, "watch: %s is not watched", sub);
    } else if (S_ISREG(sb.st_mode) && lua_file_name(e->d_name) &&
             lstat(sub, &lb) == 0 && S_ISLNK(lb.st_mode))
      watch_link_target(w, sub);
  }
  closedir(dh);
  return rc;
}

/* Watches the directory that holds top, for top's own name (see watched). */
static void watch_parent(watcher *w, const char *top) {
  char *copy = strdup(top);
  if (copy == NULL) return;
  size_t n = strlen(copy);
  while (n > 1 && copy[n - 1] == '/') copy[--n] = '\0';
  char *slash = strrchr(copy, '/');
  const char *name = slash != NULL ? slash + 1 : copy;
  char *parent = slash == NULL ? strdup(".") : slash == copy ? strdup("/") : strndup(copy, (size_t)(slash - copy));
  char *child = strdup(name);
  free(copy);
  if (parent == NULL || child == NULL || child[0] == '\0' || strcmp(child, ".") == 0 ||
      strcmp(child, "..") == 0) {
    free(parent);
    free(child);
    return;
  }
  if (watch_dir_as(w, parent, -1, child, top, false) != 0)
    ixr__log(w->rt, IXR_LOG_DEBUG, "watch: %s is not watched for %s being replaced", parent, top);
  free(parent);
  free(child);
}

int ixr_watch(ixr_runtime *rt, unsigned debounce_ms) {
  if (rt == NULL) return IXR_EINVAL;
  if (rt->closing || rt->stopping) return IXR_ECLOSED;
  if (rt->watch != NULL) return IXR_EBUSY;
  watcher *w = calloc(1, sizeof(*w));
  if (w == NULL) return IXR_ENOMEM;
  w->rt = rt;
  w->debounce_ms = debounce_ms;
  if (uv_timer_init(rt->loop, &w->debounce) != 0) {
    free(w);
    return IXR_EIO;
  }
  w->debounce.data = w;
  uv_unref((uv_handle_t *)&w->debounce);
  w->open++;
  rt->open_handles++;
  rt->watch = w;
  int rc = watch_tree(w, rt->handlers_dir, 0);
  if (rc == 0) rc = watch_tree(w, rt->lua_dir, 0);
  if (rc != 0) {
    ixr__watch_close(rt);
    return rc;
  }
  watch_parent(w, rt->handlers_dir);
  watch_parent(w, rt->lua_dir);
  ixr__log(rt, IXR_LOG_INFO, "watching %s and %s (%d directories)",
           rt->handlers_dir, rt->lua_dir, w->ndirs);
  /* The files as the generation in service was built from them: a file
   * changed while it loaded (ixr_new reads every file first) is looked at
   * now, not at the next unrelated change. */
  uint64_t now_fp = fingerprint(rt);
  w->files_fp = rt->loaded_fp_valid ? rt->loaded_fp : now_fp;
  if (now_fp != w->files_fp) look_later(w);
  return 0;
}

void ixr__watch_saw(ixr_runtime *rt, uint64_t fp) {
  watcher *w = rt->watch;
  if (w != NULL) w->files_fp = fp;
}

static void on_debounce_closed(uv_handle_t *h) {
  watcher *w = h->data;
  ixr_runtime *rt = w->rt;
  if (--w->open == 0) {
    free(w->dirs);
    free(w);
  }
  ixr__handle_closed(rt);
}

void ixr__watch_close(ixr_runtime *rt) {
  watcher *w = rt->watch;
  if (w == NULL) return;
  rt->watch = NULL;
  int n = w->ndirs;
  watched **dirs = w->dirs;
  uv_close((uv_handle_t *)&w->debounce, on_debounce_closed);
  for (int i = 0; i < n; i++) uv_close((uv_handle_t *)&dirs[i]->h, on_dir_closed);
}
