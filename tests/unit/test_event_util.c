// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bpf/event_util.h"

static struct kmon_event sample_exec(void)
{
	struct kmon_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.timestamp = 123456789;
	ev.pid = 42;
	ev.tid = 43;
	ev.event_type = KMON_EV_PROCESS_EXEC;
	ev.version = KMON_EVENT_VERSION;
	ev.cgroup_id = 7;
	ev.container_key = 9;
	memcpy(ev.comm, "busybox", 7);
	strcpy(ev.data.filename, "/bin/busybox");
	return ev;
}

static void decode_roundtrip(void **state)
{
	struct kmon_event in = sample_exec(), out;
	unsigned char raw[sizeof(in)];

	(void)state;
	memcpy(raw, &in, sizeof(in));
	assert_int_equal(kmon_event_decode(raw, sizeof(raw), &out), 0);
	assert_int_equal(out.pid, 42);
	assert_int_equal(out.tid, 43);
	assert_int_equal(out.container_key, 9);
	assert_int_equal(out.cgroup_id, 7);
	assert_string_equal(out.data.filename, "/bin/busybox");
}

static void decode_rejects_short_and_unknown(void **state)
{
	struct kmon_event in = sample_exec(), out;
	unsigned char raw[sizeof(in) + 16];

	(void)state;
	memcpy(raw, &in, sizeof(in));
	assert_int_equal(kmon_event_decode(raw, sizeof(in) - 1, &out), -EINVAL);
	assert_int_equal(kmon_event_decode(NULL, sizeof(in), &out), -EINVAL);
	/* A newer producer may append fields: a longer record still decodes. */
	assert_int_equal(kmon_event_decode(raw, sizeof(raw), &out), 0);
	in.event_type = 99;
	memcpy(raw, &in, sizeof(in));
	assert_int_equal(kmon_event_decode(raw, sizeof(in), &out), -EPROTO);
	in.event_type = 0;
	memcpy(raw, &in, sizeof(in));
	assert_int_equal(kmon_event_decode(raw, sizeof(in), &out), -EPROTO);
	in = sample_exec();
	in.version = 0;
	memcpy(raw, &in, sizeof(in));
	assert_int_equal(kmon_event_decode(raw, sizeof(in), &out), -EPROTO);
}

static void type_names(void **state)
{
	(void)state;
	assert_string_equal(kmon_event_type_name(1), "memory_alloc");
	assert_string_equal(kmon_event_type_name(2), "memory_free");
	assert_string_equal(kmon_event_type_name(3), "process_exec");
	assert_null(kmon_event_type_name(0));
	assert_string_equal(kmon_event_type_name(4), "slab_alloc");
	assert_string_equal(kmon_event_type_name(5), "slab_free");
	assert_string_equal(kmon_event_type_name(6), "oom_kill");
	assert_null(kmon_event_type_name(KMON_EV_TYPE_MAX + 1));
	assert_int_equal(kmon_event_type_parse("oom_kill"), KMON_EV_OOM_KILL);
	assert_int_equal(kmon_event_type_parse("memory_free"), 2);
	assert_int_equal(kmon_event_type_parse("memory"), 0);
}

static void mask_parse(void **state)
{
	const char *bad;
	size_t bad_len;
	uint32_t m;

	(void)state;
	assert_int_equal(kmon_event_mask_parse("memory_alloc,process_exec", &m, &bad, &bad_len), 0);
	assert_int_equal(m, KMON_EV_MASK(1) | KMON_EV_MASK(3));
	assert_int_equal(kmon_event_mask_parse("memory_alloc,bogus", &m, &bad, &bad_len), -EINVAL);
	assert_int_equal(bad_len, 5);
	assert_memory_equal(bad, "bogus", 5);
	assert_int_equal(kmon_event_mask_parse("", &m, &bad, &bad_len), -EINVAL);
	assert_int_equal(kmon_event_mask_parse("memory_alloc,", &m, &bad, &bad_len), -EINVAL);
	assert_int_equal(bad_len, 0);
}

static void unterminated_strings(void **state)
{
	struct kmon_event ev = sample_exec();
	char comm[KMON_COMM_LEN + 1], file[KMON_FILENAME_LEN + 1], tiny[4];

	(void)state;
	/* The kernel's comm fills all 16 bytes with no NUL; filename all 64. */
	memset(ev.comm, 'c', sizeof(ev.comm));
	memset(ev.data.filename, 'f', sizeof(ev.data.filename));
	assert_int_equal(kmon_strncpy_field(comm, sizeof(comm), ev.comm, sizeof(ev.comm)), 16);
	assert_int_equal(strlen(comm), 16);
	assert_int_equal(kmon_strncpy_field(file, sizeof(file), ev.data.filename,
					    sizeof(ev.data.filename)), 64);
	assert_int_equal(strlen(file), 64);
	/* A destination smaller than the field truncates and terminates. */
	assert_int_equal(kmon_strncpy_field(tiny, sizeof(tiny), ev.comm, sizeof(ev.comm)), 3);
	assert_string_equal(tiny, "ccc");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(decode_roundtrip),
		cmocka_unit_test(decode_rejects_short_and_unknown),
		cmocka_unit_test(type_names),
		cmocka_unit_test(mask_parse),
		cmocka_unit_test(unterminated_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
