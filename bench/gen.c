/*
 * gen.c: the traffic generator of the benchmarks (build/bench/gen).
 *
 * Writes realistic NDJSON traffic for N chat interactions, as an interaction
 * server would send it to ixr running bench/handlers/bench.lua, with a
 * configurable mix of what happens to each interaction:
 *
 *   routed     present -> interaction.redirect.done -> notcontrolled(routing)
 *   switch     present -> notcontrolled(revoking) -> present -> redirect.done
 *              -> notcontrolled(routing)  (a server switchover; half of them
 *              happen after the redirect was done, half before)
 *   queued     present -> error.interaction.redirect -> interaction.queue.done
 *              -> notcontrolled(routing)
 *   deleted    present -> [redirect.done] -> interaction.deleted or
 *              notcontrolled(deletion)
 *   offline    present -> notcontrolled(revoking) -> present (IsOnline
 *              "false") -> interaction.stop.done
 *   open       present only: still being routed when the capture ends
 *
 * plus chat messages typed by customers (0 to 3 per interaction) and, now
 * and then, a broken line (bad_json) or a result for an interaction nobody
 * owns (unknown_interaction): errors the mix includes on purpose.
 *
 * Interactions overlap: up to --window of them are in progress at once, and
 * the next event is taken from a random one of them, so the session table
 * has a realistic size and events of different interactions interleave.
 *
 * Results must carry the request id of the action they answer. ixr numbers
 * requests r1, r2, ... in the order it processes events, so the generator
 * simulates bench.lua event by event (which events emit which actions and
 * session lines) and knows every id. The same simulation gives the number
 * of output lines each input line causes (--counts, one byte per line, for
 * the latency client) and the totals by kind (--meta, key=value lines, for
 * bench/check.lua, which compares them with what ixr really wrote).
 *
 * Deterministic: the same options and --seed give byte-identical files.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers: xoshiro256**, seeded by splitmix64 ----------------- */

static uint64_t rs[4];

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rnd(void) {
  uint64_t r = rotl(rs[1] * 5, 7) * 9, t = rs[1] << 17;
  rs[2] ^= rs[0];
  rs[3] ^= rs[1];
  rs[1] ^= rs[2];
  rs[0] ^= rs[3];
  rs[2] ^= t;
  rs[3] = rotl(rs[3], 45);
  return r;
}

/* uniform in [0, n) (n small: the modulo bias is negligible) */
static unsigned below(unsigned n) { return (unsigned)(rnd() % n); }

static void seed(uint64_t s) {
  for (int i = 0; i < 4; i++) rs[i] = splitmix64(&s);
}

/* ---- an append buffer ---------------------------------------------------- */

typedef struct {
  char *p;
  size_t len, cap;
} sbuf;

static void sb_need(sbuf *b, size_t n) {
  if (b->len + n + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap < b->len + n + 1) cap *= 2;
  b->p = realloc(b->p, cap);
  if (b->p == NULL) {
    fprintf(stderr, "gen: out of memory\n");
    exit(1);
  }
  b->cap = cap;
}

static void sb_put(sbuf *b, const char *s, size_t n) {
  sb_need(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[1024];
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  sb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* ---- sample data ----------------------------------------------------------
 * Strings are written into JSON as they are: they must not need escaping
 * beyond what they already carry. */

static const char *const FIRST[] = {"Anna", "Lukas", "Marie", "Jonas", "Chloé",
                                    "Hugo", "Sofia", "Mateo", "Emma", "Noah",
                                    "Léa", "Finn", "Olivia", "Liam", "Zoë", "Elias"};
static const char *const LAST[] = {"Schmidt", "Martin", "García", "Smith", "Müller",
                                   "Bernard", "López", "Johnson", "Weber", "Dubois",
                                   "Fernández", "Brown", "Wagner", "Moreau"};
/* 50% en, 15% fr, 15% de, 10% es, 10% it (no group: falls back to English) */
static const char *const LANG[] = {"en", "en", "en", "en", "en", "en", "en",
                                   "en", "en", "en", "fr", "fr", "fr", "de",
                                   "de", "de", "es", "es", "it", "it"};
static const char *const SUBJECT[] = {
    "Question about invoice 2024-11-0042",
    "Delivery is late",
    "Cannot log in to my account",
    "Change of address",
    "Problème avec ma commande",
    "Rückerstattung für Bestellung 7781",
    "Upgrade my subscription",
    "Cancel my contract",
};
static const char *const SERVICE[] = {"sales", "billing", "support", "retention"};
static const char *const SKILLS[] = {"billing", "english", "french", "german",
                                     "spanish", "vip", "technical", "returns"};
static const char *const PAGES[] = {
    "https://shop.example.com/account/orders",
    "https://shop.example.com/help/delivery",
    "https://shop.example.com/cart?step=payment",
    "https://www.example.com/contact",
};
static const char *const TZ[] = {"Europe/Berlin", "Europe/Paris", "Europe/Madrid",
                                 "Europe/London", "America/New_York"};
static const char *const TEXT[] = {
    "Hello, is anybody there?",
    "I have been waiting for 10 minutes already",
    "My order number is 4471-2231",
    "The parcel tracking says \\\"delivered\\\" but I have nothing",
    "Bonjour, j'ai une question sur ma facture",
    "Können Sie mir bitte helfen?",
    "ok thanks",
    "Is it possible to change the delivery date to next Tuesday? I will not be "
    "at home before then.",
};
static const char *const ROUTE_ERRORS[] = {"no_target_available", "target_busy",
                                           "agent_not_ready"};
static const char *const PAD =
    "Customer called twice last week about the same order; promised a "
    "callback from the billing team. Prefers chat over phone. Loyalty "
    "programme member since 2019, two open returns, one voucher pending. ";

/* ---- the model ----------------------------------------------------------- */

/* What an input line is, and what ixr running bench.lua answers to it. */
enum step {
  S_PRESENT,         /* new session: started + redirect            2 lines */
  S_MSG,             /* on handler only                            0 */
  S_DONE_REDIRECT,   /* flow: updatedata action, then waits         1 */
  S_ERR_REDIRECT,    /* flow: queue request                         1 */
  S_DONE_QUEUE,      /* flow: updatedata action, then waits         1 */
  S_NC_ROUTING,      /* ended routing                               1 */
  S_NC_REVOKING,     /* suspended revoking                          1 */
  S_REPRESENT,       /* resumed + redirect                          2 */
  S_REPRESENT_OFF,   /* resumed + stop (IsOnline "false")           2 */
  S_DONE_STOP,       /* flow returns: ended completed               1 */
  S_NC_DELETION,     /* ended deletion                              1 */
  S_DELETED,         /* ended deleted                               1 */
};

enum path { P_ROUTED, P_SWITCH, P_QUEUED, P_DELETED, P_OFFLINE, P_OPEN, P_COUNT };
static const char *const PATH_NAMES[P_COUNT] = {"routed", "switch", "queued",
                                                "deleted", "offline", "open"};

typedef struct {
  uint64_t num;       /* interaction number: names it */
  uint64_t req;       /* the request its flow waits for */
  uint8_t script[24];
  uint8_t nsteps, step;
  uint8_t lang, first, last, subject, service, page, tz, skill1, skill2;
  uint8_t segment;    /* 0 bronze 1 silver 2 gold */
  uint8_t agent;
  uint32_t visits;
  uint32_t score_x4;
} inter;

typedef struct {
  uint64_t events, interactions, lines_out, actions;
  uint64_t started, resumed, suspended, ended;
  uint64_t end_routing, end_deletion, end_deleted, end_completed;
  uint64_t act_redirect, act_queue, act_stop, act_updatedata;
  uint64_t err_bad_json, err_unknown;
  uint64_t live_at_end;
  uint64_t bytes;
  uint64_t paths[P_COUNT];
} totals;

static struct {
  uint64_t n;
  uint64_t seed;
  unsigned window;
  unsigned userdata;
  unsigned mix[P_COUNT];
  unsigned errors_permille;
  unsigned messages_max;
  const char *out, *counts, *meta;
} opt = {.n = 100000,
         .seed = 1,
         .window = 2000,
         .userdata = 600,
         .mix = {62, 14, 10, 8, 2, 4},
         .errors_permille = 5,
         .messages_max = 3};

static totals T;
static uint64_t next_req; /* ixr's request counter, as it will be */
static FILE *out, *counts;
static sbuf line;

static void iid_of(const inter *it, char buf[24]) {
  /* Genesys-like: 16 characters, unique per interaction number. */
  static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  uint64_t x = it->num;
  char tmp[16];
  for (int i = 0; i < 10; i++) {
    tmp[9 - i] = digits[x % 36];
    x /= 36;
  }
  uint64_t h = it->num * 0x9e3779b97f4a7c15ull;
  buf[0] = '0';
  buf[1] = '0';
  buf[2] = '0';
  buf[3] = digits[(h >> 10) % 36];
  buf[4] = digits[(h >> 20) % 36];
  buf[5] = digits[(h >> 30) % 36];
  memcpy(buf + 6, tmp, 10);
  buf[16] = '\0';
}

static void emit_line(unsigned nout) {
  sb_put(&line, "\n", 1);
  fwrite(line.p, 1, line.len, out);
  T.bytes += line.len;
  line.len = 0;
  T.events++;
  T.lines_out += nout;
  if (counts) fputc((int)nout, counts);
}

static void head(const char *name, const inter *it) {
  char iid[24];
  iid_of(it, iid);
  line.len = 0;
  sb_printf(&line, "{\"name\":\"%s\",\"data\":{\"interactionid\":\"%s\"", name, iid);
}

static void userdata(const inter *it, bool online) {
  size_t start = line.len;
  sb_puts(&line, ",\"userdata\":{");
  sb_printf(&line, "\"CustomerId\":\"C%08" PRIu64 "\"", 10000000 + it->num * 7 % 90000000);
  sb_printf(&line, ",\"FirstName\":\"%s\",\"LastName\":\"%s\"", FIRST[it->first], LAST[it->last]);
  sb_printf(&line, ",\"EmailAddress\":\"customer%" PRIu64 "@example.com\"", it->num);
  sb_printf(&line, ",\"Language\":\"%s\"", LANG[it->lang]);
  sb_printf(&line, ",\"Segment\":\"%s\"",
            it->segment == 2 ? "gold" : it->segment == 1 ? "silver" : "bronze");
  sb_printf(&line, ",\"IsOnline\":\"%s\"", online ? "true" : "false");
  sb_printf(&line, ",\"Subject\":\"%s\"", SUBJECT[it->subject]);
  sb_printf(&line, ",\"ChatServerAppName\":\"ChatServer_%02u\"", (unsigned)(it->num % 4) + 1);
  sb_printf(&line, ",\"ServiceType\":\"%s\"", SERVICE[it->service]);
  sb_printf(&line, ",\"VisitCount\":%u", it->visits);
  sb_printf(&line, ",\"Score\":%.2f", it->score_x4 / 4.0);
  sb_printf(&line, ",\"Authenticated\":%s", it->visits > 2 ? "true" : "false");
  sb_printf(&line, ",\"Skills\":[\"%s\",\"%s\"]", SKILLS[it->skill1], SKILLS[it->skill2]);
  sb_printf(&line, ",\"Origin\":{\"page\":\"%s\",\"referrer\":\"%s\"}", PAGES[it->page],
            it->visits % 2 ? "search" : "direct");
  sb_printf(&line, ",\"TimeZone\":\"%s\"", TZ[it->tz]);
  size_t used = line.len - start + 2;
  if (used + 12 < opt.userdata) {
    size_t want = opt.userdata - used - 12, plen = strlen(PAD);
    sb_puts(&line, ",\"Notes\":\"");
    while (want > 0) {
      size_t k = want < plen ? want : plen;
      /* cut on an ASCII boundary: PAD is ASCII */
      sb_put(&line, PAD, k);
      want -= k;
    }
    sb_puts(&line, "\"");
  }
  sb_puts(&line, "}");
}

static void present(const inter *it, bool online) {
  head("interaction.present", it);
  sb_puts(&line, ",\"media\":\"chat\",\"queue\":\"chat_inbound\",\"strategy\":\"bench\"");
  sb_printf(&line, ",\"tenant\":\"Environment\",\"received\":\"2024-11-05T10:%02u:%02uZ\"",
            (unsigned)(it->num / 60 % 60), (unsigned)(it->num % 60));
  userdata(it, online);
  sb_puts(&line, "}}");
}

static void result(const char *name, const inter *it, const char *extra) {
  head(name, it);
  sb_printf(&line, ",\"requestid\":\"r%" PRIu64 "\"%s}}", it->req, extra);
}

static void add_step(inter *it, uint8_t s) {
  if (it->nsteps < sizeof(it->script)) it->script[it->nsteps++] = s;
}

static void add_messages(inter *it) {
  unsigned n = below(opt.messages_max + 1);
  for (unsigned i = 0; i < n; i++) add_step(it, S_MSG);
}

static void new_inter(inter *it, uint64_t num) {
  memset(it, 0, sizeof(*it));
  it->num = num;
  it->lang = (uint8_t)below(sizeof(LANG) / sizeof(LANG[0]));
  it->first = (uint8_t)below(sizeof(FIRST) / sizeof(FIRST[0]));
  it->last = (uint8_t)below(sizeof(LAST) / sizeof(LAST[0]));
  it->subject = (uint8_t)below(sizeof(SUBJECT) / sizeof(SUBJECT[0]));
  it->service = (uint8_t)below(sizeof(SERVICE) / sizeof(SERVICE[0]));
  it->page = (uint8_t)below(sizeof(PAGES) / sizeof(PAGES[0]));
  it->tz = (uint8_t)below(sizeof(TZ) / sizeof(TZ[0]));
  it->skill1 = (uint8_t)below(8);
  it->skill2 = (uint8_t)below(8);
  unsigned seg = below(10);
  it->segment = seg == 0 ? 2 : seg < 4 ? 1 : 0;
  it->agent = (uint8_t)below(250);
  it->visits = below(12);
  it->score_x4 = below(400);

  unsigned total = 0, pick;
  for (int p = 0; p < P_COUNT; p++) total += opt.mix[p];
  pick = below(total);
  int path = 0;
  while (pick >= opt.mix[path]) pick -= opt.mix[path++];
  T.paths[path]++;

  add_step(it, S_PRESENT);
  switch (path) {
    case P_ROUTED:
      add_messages(it);
      add_step(it, S_DONE_REDIRECT);
      add_step(it, S_NC_ROUTING);
      break;
    case P_SWITCH:
      add_messages(it);
      if (below(2)) add_step(it, S_DONE_REDIRECT); /* switchover after routing */
      add_step(it, S_NC_REVOKING);
      if (below(2)) add_step(it, S_MSG);             /* typed while suspended */
      add_step(it, S_REPRESENT);
      add_step(it, S_DONE_REDIRECT);
      add_step(it, S_NC_ROUTING);
      break;
    case P_QUEUED:
      add_step(it, S_ERR_REDIRECT);
      add_messages(it);
      add_step(it, S_DONE_QUEUE);
      add_step(it, S_NC_ROUTING);
      break;
    case P_DELETED:
      add_messages(it);
      if (below(2)) add_step(it, S_DONE_REDIRECT);
      add_step(it, below(2) ? S_DELETED : S_NC_DELETION);
      break;
    case P_OFFLINE:
      add_step(it, S_NC_REVOKING);
      add_step(it, S_REPRESENT_OFF);
      add_step(it, S_DONE_STOP);
      break;
    case P_OPEN: break;
  }
}

static void action(const char *name) {
  next_req++;
  T.actions++;
  if (strcmp(name, "redirect") == 0) T.act_redirect++;
  else if (strcmp(name, "queue") == 0) T.act_queue++;
  else if (strcmp(name, "stop") == 0) T.act_stop++;
  else T.act_updatedata++;
}

/* Writes the next event of `it`, updating the model as ixr will. Returns
 * true when that was its last event. */
static bool advance(inter *it) {
  char extra[256];
  switch ((enum step)it->script[it->step]) {
    case S_PRESENT:
      T.interactions++;
      present(it, true);
      T.started++;
      action("redirect");
      it->req = next_req;
      emit_line(2);
      break;
    case S_MSG:
      head("interaction.message", it);
      sb_printf(&line, ",\"from\":\"customer\",\"text\":\"%s\"}}", TEXT[below(8)]);
      emit_line(0);
      break;
    case S_DONE_REDIRECT:
      snprintf(extra, sizeof(extra), ",\"agent\":\"Agent%03u\",\"place\":\"Place_%03u\"",
               it->agent, it->agent);
      result("interaction.redirect.done", it, extra);
      action("updatedata");
      emit_line(1);
      break;
    case S_ERR_REDIRECT: {
      const char *e = ROUTE_ERRORS[below(3)];
      snprintf(extra, sizeof(extra),
               ",\"error\":\"%s\",\"description\":\"No agent could take the chat "
               "(%s) within the routing timeout\"",
               e, e);
      result("error.interaction.redirect", it, extra);
      action("queue");
      it->req = next_req;
      emit_line(1);
      break;
    }
    case S_DONE_QUEUE:
      result("interaction.queue.done", it, ",\"queue\":\"chat_inbound\"");
      action("updatedata");
      emit_line(1);
      break;
    case S_NC_ROUTING:
    case S_NC_REVOKING:
    case S_NC_DELETION: {
      enum step s = (enum step)it->script[it->step];
      head("interaction.notcontrolled", it);
      sb_printf(&line, ",\"resultof\":\"%s\"}}",
                s == S_NC_ROUTING ? "routing" : s == S_NC_REVOKING ? "revoking" : "deletion");
      if (s == S_NC_REVOKING) {
        T.suspended++;
      } else {
        T.ended++;
        if (s == S_NC_ROUTING) T.end_routing++;
        else T.end_deletion++;
      }
      emit_line(1);
      break;
    }
    case S_REPRESENT:
    case S_REPRESENT_OFF: {
      bool online = it->script[it->step] == S_REPRESENT;
      present(it, online);
      T.resumed++;
      action(online ? "redirect" : "stop");
      it->req = next_req;
      emit_line(2);
      break;
    }
    case S_DONE_STOP:
      result("interaction.stop.done", it, "");
      T.ended++;
      T.end_completed++;
      emit_line(1);
      break;
    case S_DELETED:
      head("interaction.deleted", it);
      sb_puts(&line, ",\"reason\":\"customer_left\"}}");
      T.ended++;
      T.end_deleted++;
      emit_line(1);
      break;
  }
  it->step++;
  return it->step >= it->nsteps;
}

static void noise(uint64_t *unknown_num) {
  if (below(2)) {
    /* A line cut short, as a crashing adapter leaves it. */
    line.len = 0;
    sb_puts(&line, "{\"name\":\"interaction.message\",\"data\":{\"interactionid\":\"0000");
    T.err_bad_json++;
  } else {
    inter ghost;
    memset(&ghost, 0, sizeof(ghost));
    ghost.num = (*unknown_num)++;
    ghost.req = 1;
    result("interaction.redirect.done", &ghost, "");
    T.err_unknown++;
  }
  emit_line(1);
}

/* ---- options ------------------------------------------------------------- */

/* The largest -n: 100 million interactions are about 30 GB of NDJSON. */
#define MAX_INTERACTIONS 100000000ull

static void usage(FILE *f) {
  fputs(
      "usage: gen [-n INTERACTIONS] [--seed N] [--window N] [--userdata BYTES]\n"
      "           [--mix routed=62,switch=14,queued=10,deleted=8,offline=2,open=4]\n"
      "           [--errors PERMILLE] [--messages MAX]\n"
      "           [-o FILE] [--counts FILE] [--meta FILE]\n"
      "Writes NDJSON traffic for bench/handlers/bench.lua (see the top of gen.c).\n"
      "Numbers are decimal digits only: -n 1..100000000, --seed 0..2^64-1,\n"
      "--window 1..99999999, --userdata 0..999999, --errors 0..1000 (per mille),\n"
      "--messages 0..8, --mix weights 0..1000000 (not all 0).\n",
      f);
}

/* Digits only (no sign, no blanks, no base prefix), no overflow. strtoull
 * alone would take "-5" as 2^64-5 and " 7" as 7. */
static bool parse_u64(const char *s, uint64_t *v) {
  if (*s == '\0') return false;
  uint64_t x = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return false;
    unsigned d = (unsigned)(*s - '0');
    if (x > (UINT64_MAX - d) / 10) return false;
    x = x * 10 + d;
  }
  *v = x;
  return true;
}

static bool parse_mix(char *s) {
  unsigned mix[P_COUNT] = {0};
  for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
    char *eq = strchr(tok, '=');
    if (!eq) return false;
    *eq = '\0';
    uint64_t v;
    if (!parse_u64(eq + 1, &v) || v > 1000000) return false;
    int p;
    for (p = 0; p < P_COUNT; p++)
      if (strcmp(tok, PATH_NAMES[p]) == 0) break;
    if (p == P_COUNT) return false;
    mix[p] = (unsigned)v;
  }
  unsigned total = 0;
  for (int p = 0; p < P_COUNT; p++) total += mix[p];
  if (total == 0) return false;
  memcpy(opt.mix, mix, sizeof(mix));
  return true;
}

/* The numeric options and their ranges. */
static const struct {
  const char *name;
  uint64_t min, max;
} NUMERIC[] = {
    {"-n", 1, MAX_INTERACTIONS},   {"--seed", 0, UINT64_MAX}, {"--window", 1, 99999999},
    {"--userdata", 0, 999999},     {"--errors", 0, 1000},     {"--messages", 0, 8},
};

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t x = 0;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    }
    if (v == NULL) goto bad;
    i++;
    size_t k;
    for (k = 0; k < sizeof(NUMERIC) / sizeof(NUMERIC[0]); k++)
      if (strcmp(a, NUMERIC[k].name) == 0) break;
    if (k < sizeof(NUMERIC) / sizeof(NUMERIC[0])) {
      if (!parse_u64(v, &x) || x < NUMERIC[k].min || x > NUMERIC[k].max) {
        fprintf(stderr,
                "gen: %s: bad value '%s': want a whole number from %" PRIu64 " to %" PRIu64
                " (digits only)\n",
                a, v, NUMERIC[k].min, NUMERIC[k].max);
        return 2;
      }
    }
    if (strcmp(a, "-n") == 0) opt.n = x;
    else if (strcmp(a, "--seed") == 0) opt.seed = x;
    else if (strcmp(a, "--window") == 0) opt.window = (unsigned)x;
    else if (strcmp(a, "--userdata") == 0) opt.userdata = (unsigned)x;
    else if (strcmp(a, "--errors") == 0) opt.errors_permille = (unsigned)x;
    else if (strcmp(a, "--messages") == 0) opt.messages_max = (unsigned)x;
    else if (strcmp(a, "--mix") == 0) {
      char *copy = strdup(v);
      if (copy == NULL || !parse_mix(copy)) {
        fprintf(stderr,
                "gen: --mix: bad value '%s': want PATH=WEIGHT,... with PATH one of "
                "routed, switch, queued, deleted, offline, open and WEIGHT 0..1000000 "
                "(digits only, not all 0)\n",
                v);
        free(copy);
        return 2;
      }
      free(copy);
    } else if (strcmp(a, "-o") == 0) opt.out = v;
    else if (strcmp(a, "--counts") == 0) opt.counts = v;
    else if (strcmp(a, "--meta") == 0) opt.meta = v;
    else goto bad;
    continue;
  bad:
    fprintf(stderr, "gen: bad or incomplete option '%s'\n", a);
    usage(stderr);
    return 2;
  }

  seed(opt.seed);
  out = stdout;
  if (opt.out && (out = fopen(opt.out, "wb")) == NULL) {
    fprintf(stderr, "gen: %s: %s\n", opt.out, strerror(errno));
    return 1;
  }
  static char obuf[1 << 16];
  setvbuf(out, obuf, _IOFBF, sizeof(obuf));
  if (opt.counts && (counts = fopen(opt.counts, "wb")) == NULL) {
    fprintf(stderr, "gen: %s: %s\n", opt.counts, strerror(errno));
    return 1;
  }

  inter *live = calloc(opt.window, sizeof(*live));
  if (live == NULL) {
    fprintf(stderr, "gen: out of memory\n");
    return 1;
  }
  unsigned nlive = 0;
  uint64_t started = 0, unknown_num = 1000000000000ull;
  while (started < opt.n || nlive > 0) {
    unsigned r = below(opt.window);
    inter *it;
    if (r >= nlive && started < opt.n) {
      it = &live[nlive++];
      new_inter(it, ++started);
    } else {
      it = &live[nlive > 0 ? r % nlive : 0];
    }
    if (advance(it)) {
      if (it->script[it->nsteps - 1] == S_PRESENT) T.live_at_end++;
      *it = live[--nlive]; /* swap-remove */
    }
    if (opt.errors_permille && below(1000) < opt.errors_permille) noise(&unknown_num);
  }

  if (fflush(out) != 0 || (opt.out && fclose(out) != 0)) {
    fprintf(stderr, "gen: write error: %s\n", strerror(errno));
    return 1;
  }
  if (counts && fclose(counts) != 0) {
    fprintf(stderr, "gen: %s: write error\n", opt.counts);
    return 1;
  }
  if (opt.meta) {
    FILE *m = fopen(opt.meta, "w");
    if (m == NULL) {
      fprintf(stderr, "gen: %s: %s\n", opt.meta, strerror(errno));
      return 1;
    }
#define KV(k, v) fprintf(m, "%s=%" PRIu64 "\n", k, (uint64_t)(v))
    KV("events", T.events);
    KV("bytes", T.bytes);
    KV("interactions", T.interactions);
    KV("lines_out", T.lines_out);
    KV("started", T.started);
    KV("resumed", T.resumed);
    KV("suspended", T.suspended);
    KV("ended", T.ended);
    KV("ended.routing", T.end_routing);
    KV("ended.deletion", T.end_deletion);
    KV("ended.deleted", T.end_deleted);
    KV("ended.completed", T.end_completed);
    KV("actions", T.actions);
    KV("action.redirect", T.act_redirect);
    KV("action.queue", T.act_queue);
    KV("action.stop", T.act_stop);
    KV("action.updatedata", T.act_updatedata);
    KV("errors", T.err_bad_json + T.err_unknown);
    KV("error.bad_json", T.err_bad_json);
    KV("error.unknown_interaction", T.err_unknown);
    KV("live_at_end", T.live_at_end);
    for (int p = 0; p < P_COUNT; p++) {
      char k[32];
      snprintf(k, sizeof(k), "path.%s", PATH_NAMES[p]);
      KV(k, T.paths[p]);
    }
#undef KV
    fclose(m);
  }
  fprintf(stderr,
          "gen: %" PRIu64 " events (%" PRIu64 " bytes) for %" PRIu64
          " interactions, seed %" PRIu64 ", window %u\n",
          T.events, T.bytes, T.interactions, opt.seed, opt.window);
  free(live);
  free(line.p);
  return 0;
}
