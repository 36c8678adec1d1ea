/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * libkmon, the consumer SDK, in one include: the event record, container
 * metadata, the libuv client and the pull-style reader. Link with
 * `pkg-config --libs kmon`. The protocol version and the rule for compatible
 * changes are in PROTOCOL.md, installed beside this library's docs.
 */
#ifndef KMON_SDK_H
#define KMON_SDK_H

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "bpf/event_util.h"
#include "shm/meta.h"
#include "consumers/lib/client.h"
#include "consumers/lib/reader.h"

#endif
