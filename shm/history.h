/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The fan-out's history: the newest `cap` kernel events in fixed slots of a
 * sealed memfd, written by the agent's drain thread alone. Two kinds of
 * reader:
 *  - the agent's attach, which replays the newest events to a late consumer;
 *  - consumers without a namespace filter (shared consumers,
 *    agent/fanout.h): they map it read-only and read the live stream from it, so the drain
 *    writes an event once for all of them instead of once into each one's
 *    ring (the copy is most of what a consumer costs the agent).
 *
 * No reader ever holds up the writer. The writer overwrites the oldest slot
 * without waiting; a reader copies slots, then checks, seqlock-style, that
 * no overwrite of them had begun (the `started` counter). A reader that fell
 * a whole history behind counts what it missed as lost, and never uses a
 * torn event.
 *
 * Layout version 1: a header page
 *   magic (KMON_HIST_MAGIC), layout version, header bytes, slot bytes, cap
 *   started    (a line of its own) at least the events whose write has
 *              begun: the drain announces overwrites in steps, up to a 64th
 *              of the history ahead, so a reader near the oldest slot may
 *              take a few still-whole events for overwritten, never the
 *              other way round
 *   head       (a line of its own) events completely written
 *   published  (a line of its own) events consumers may read: set once per
 *              drain batch, after the batch's records in the consumers' own
 *              rings (their META) were published, so a consumer that reads
 *              `published` first and then its ring has every event's META
 * followed by cap slots of struct kmon_event: event number i is in slot
 * i % cap.
 *
 * Who pays: the drain faults the pages in as it writes them; they are the
 * agent's, as its private history was. A consumer gets a read-only
 * descriptor of a file sealed against resizing and writes, so it can
 * neither change an event nor free a page under the drain. Reading a slot
 * the drain never wrote faults a page in on the reader's account, at most
 * the history's size, which the drain then writes into.
 */
#ifndef KMON_SHM_HISTORY_H
#define KMON_SHM_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KMON_HIST_MAGIC 0x4b4d4f4e48495354ull /* "KMONHIST" */
#define KMON_HIST_LAYOUT_VERSION 1
#define KMON_HIST_MAX_CAP (1u << 23) /* 1 GiB of events */

/* The notes a consumer reading the history reports in its ring's ctl page
 * (ring_cons__set_note()): the events it found overwritten there, and the
 * number of the next event it will read. */
enum kmon_hist_note {
	KMON_HIST_NOTE_LOST = 0,
	KMON_HIST_NOTE_POS = 1,
};

struct kmon_event;

/* ---- producer (agent) ---- */

struct hist_prod;

/* cap events, 1..KMON_HIST_MAX_CAP; NULL + errno on error. */
struct hist_prod *hist_prod__new(size_t cap, const char *name);
void hist_prod__free(struct hist_prod *h);
size_t hist_prod__cap(const struct hist_prod *h);
/* Bytes of shared memory a history of cap events takes. */
size_t hist_prod__total_bytes(size_t cap);
/* Drain thread: event number head() becomes ev. */
void hist_prod__append(struct hist_prod *h, const struct kmon_event *ev);
/* Events completely written (acquire). */
uint64_t hist_prod__head(const struct hist_prod *h);
/* At least the events whose write has begun (announced a step ahead):
 * slots below started - cap are gone, maybe a few more. */
uint64_t hist_prod__started(const struct hist_prod *h);
/* Copies event i (below a head() read before) into *ev; false when the drain
 * began to overwrite its slot before the copy was done (a torn copy: not to
 * be used). */
bool hist_prod__read(const struct hist_prod *h, uint64_t i, struct kmon_event *ev);
/* Drain thread, once per batch: consumers may read up to head(). Ends with a
 * full fence, so that the caller's next load of a consumer's wait word is
 * ordered after it (the consumer's side: hist_cons__published() after
 * announcing sleep). */
void hist_prod__publish(struct hist_prod *h);
/* The read-only descriptor to hand consumers; owned by the history. */
int hist_prod__consumer_fd(const struct hist_prod *h);

/* ---- consumer ---- */

struct hist_cons;

/* Checks the descriptor (a memfd sealed against resizing and writes, of the
 * size its header says, with this build's slot size and layout) and maps it
 * read-only. NULL + errno (EPROTO: not a kmon history) with a reason in err
 * (may be NULL). */
struct hist_cons *hist_cons__map(int fd, char *err, size_t errlen);
void hist_cons__free(struct hist_cons *c);
size_t hist_cons__cap(const struct hist_cons *c);
/* Events the agent has published (acquire). */
uint64_t hist_cons__published(const struct hist_cons *c);
/* Copies the events from *pos on, below end (a published() read before) and
 * at most n, into out; returns how many are good, in order. *pos moves past
 * what was looked at; events overwritten before they could be copied are
 * skipped and added to *lost. When *pos had fallen a whole history behind,
 * it jumps ahead with some slack (an eighth of the history), so that the
 * next copy is not overwritten at once. */
unsigned hist_cons__read(struct hist_cons *c, uint64_t *pos, uint64_t end, struct kmon_event *out,
			 unsigned n, uint64_t *lost);

#endif
