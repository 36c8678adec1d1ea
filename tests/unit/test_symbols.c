// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Names, not addresses: the agent's symbol table (agent/ksyms.c) built from
 * a real /proc/kallsyms excerpt, the sealed memfd and the consumer's parser
 * (shm/symtab.c), the address masking (agent/addrmask.c) and the JSON
 * encoder's use of it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/addrmask.h"
#include "agent/ksyms.h"
#include "shm/common/event_json.h"
#include "shm/symtab.h"

#ifndef KMON_FIXTURES
#error KMON_FIXTURES must name tests/fixtures
#endif

/* The fixture without its provenance comments, as the kernel prints it. */
static char kallsyms_path[64];

static int setup(void **state)
{
	char line[1024];
	FILE *in = fopen(KMON_FIXTURES "/kallsyms/kallsyms-6.18-x86_64.txt", "r");
	int fd;
	FILE *out;

	(void)state;
	snprintf(kallsyms_path, sizeof(kallsyms_path), "/tmp/kmon-kallsyms-XXXXXX");
	fd = mkstemp(kallsyms_path);
	if (!in || fd < 0)
		return -1;
	out = fdopen(fd, "w");
	if (!out)
		return -1;
	while (fgets(line, sizeof(line), in))
		if (line[0] != '#')
			fputs(line, out);
	fclose(in);
	return fclose(out);
}

static int teardown(void **state)
{
	(void)state;
	unlink(kallsyms_path);
	return 0;
}

static struct ksyms *load(void)
{
	struct ksyms_opts o = { .sz = sizeof(o), .mode = KSYMS_KALLSYMS,
				.kallsyms_path = kallsyms_path };
	struct ksyms *k = ksyms__load(&o);

	assert_non_null(k);
	return k;
}

static void sym(const struct kmon_symtab *st, uint64_t ref, const char *want)
{
	char buf[128];
	int n = kmon_symtab__symbolize(st, ref, buf, sizeof(buf));

	assert_int_equal(n, (int)strlen(want));
	assert_string_equal(buf, want);
}

static void test_table_resolves_like_kallsyms(void **state)
{
	struct ksyms *k = load();
	struct kmon_symtab *st;
	char err[200];

	(void)state;
	assert_int_equal(ksyms__source(k), KMON_SYMTAB_KALLSYMS);
	assert_string_equal(ksyms__why(k), "");
	/* 47 text lines, 4 share _stext's address: one name each address. */
	assert_int_equal(ksyms__count(k), 44);
	st = kmon_symtab__open(ksyms__memfd(k), err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(kmon_symtab__count(st), 44);
	assert_int_equal(kmon_symtab__source(st), KMON_SYMTAB_KALLSYMS);
	/* The call sites the kernel reports: inside a function, at its start. */
	sym(st, ksyms__ref(k, 0xffffffff81647de0ull + 0x7e), "__kmalloc_noprof+0x7e");
	sym(st, ksyms__ref(k, 0xffffffff81e8c570ull), "kmalloc_reserve+0x0");
	sym(st, ksyms__ref(k, 0xffffffff816487f0ull + 0x1a4), "kfree+0x1a4");
	/* The same again through the cache. */
	sym(st, ksyms__ref(k, 0xffffffff81647de0ull + 0x7e), "__kmalloc_noprof+0x7e");
	sym(st, ksyms__ref(k, 0xffffffffc0201000ull + 0x10), "ftrace_trampoline+0x10 [__builtin__ftrace]");
	sym(st, ksyms__ref(k, 0xffffffffc002552cull + 0x20),
	    "bpf_prog_feccdd62bfa91991_kmon_irq_exit+0x20 [bpf]");
	/* Aliases: the first name listed at an address. */
	sym(st, ksyms__ref(k, 0xffffffff81000004ull), "srso_alias_untrain_ret+0x4");
	/* Nothing before the first symbol, nothing far past the last. */
	assert_int_equal(ksyms__ref(k, 0xffffffff80ffffffull), 0);
	assert_int_equal(ksyms__ref(k, 0xffffffffc0201000ull + KMON_SYMTAB_MAX_OFFSET), 0);
	assert_int_equal(ksyms__ref(k, 0), 0);
	/* The symbol's own address stays in the agent. */
	assert_int_equal(ksyms__addr(k, (uint32_t)(ksyms__ref(k, 0xffffffff816487f0ull) >> 32)),
			 0xffffffff816487f0ull);
	kmon_symtab__free(st);
	ksyms__free(k);
}

/* What a consumer receives: nothing but names, and sealed for good. */
static void test_memfd_sealed_and_addressless(void **state)
{
	struct ksyms *k = load();
	int fd = ksyms__memfd(k);
	size_t len = ksyms__memfd_bytes(k);
	char *p;

	(void)state;
	assert_int_equal(fcntl(fd, F_GET_SEALS),
			 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	assert_true(ftruncate(fd, 0) < 0);
	assert_true(pwrite(fd, "x", 1, 0) < 0);
	assert_true(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	/* No address of the fixture anywhere in it, in binary (any byte
	 * offset) or as text. */
	{
		FILE *f = fopen(kallsyms_path, "r");
		char line[512], hex[17];
		uint64_t v;
		unsigned seen = 0;

		assert_non_null(f);
		while (fgets(line, sizeof(line), f) && sscanf(line, "%16s", hex) == 1) {
			v = strtoull(hex, NULL, 16);
			assert_null(memmem(p, len, &v, sizeof(v)));
			assert_null(memmem(p, len, hex, strlen(hex)));
			seen++;
		}
		fclose(f);
		assert_int_equal(seen, 47);
	}
	munmap(p, len);
	ksyms__free(k);
}

static void test_none_says_why(void **state)
{
	struct ksyms_opts o = { .sz = sizeof(o), .mode = KSYMS_KALLSYMS,
				.kallsyms_path = "/nonexistent/kallsyms" };
	struct ksyms *k = ksyms__load(&o);
	struct kmon_symtab *st;
	char buf[32], err[200];

	(void)state;
	assert_non_null(k);
	assert_int_equal(ksyms__source(k), KMON_SYMTAB_NONE);
	assert_non_null(strstr(ksyms__why(k), "/nonexistent/kallsyms"));
	assert_non_null(strstr(ksyms__why(k), "--kernel-symbols auto"));
	assert_int_equal(ksyms__ref(k, 0xffffffff816487f0ull), 0);
	/* Still a valid (empty) table for consumers. */
	st = kmon_symtab__open(ksyms__memfd(k), err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(kmon_symtab__count(st), 0);
	assert_int_equal(kmon_symtab__symbolize(st, 1ull << 32, buf, sizeof(buf)), -ENOENT);
	assert_string_equal(buf, "");
	kmon_symtab__free(st);
	ksyms__free(k);
}

/* A table read from text written as /proc/kallsyms would print it. */
static struct ksyms *load_text(const char *text)
{
	char path[] = "/tmp/kmon-kallsyms-text-XXXXXX";
	int fd = mkstemp(path);
	struct ksyms_opts o = { .sz = sizeof(o), .mode = KSYMS_KALLSYMS, .kallsyms_path = path };
	size_t len = strlen(text);
	struct ksyms *k;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	k = ksyms__load(&o);
	unlink(path);
	assert_non_null(k);
	return k;
}

/* All-zero addresses (kptr_restrict) must not become a table of aliases. */
static void test_zero_addresses_refused(void **state)
{
	struct ksyms *k = load_text("0000000000000000 T _stext\n0000000000000000 T kfree\n");

	(void)state;
	assert_int_equal(ksyms__source(k), KMON_SYMTAB_NONE);
	assert_non_null(strstr(ksyms__why(k), "kptr_restrict"));
	ksyms__free(k);
}

/* Symbols spanning more than 4 GiB (32-bit offsets cannot hold them) still
 * resolve, at both ends and across the gap. arm64 places modules near the
 * kernel, but nothing promises it for every architecture. */
static void test_wide_span_resolves(void **state)
{
	struct ksyms *k = load_text("ffff800080000000 T _stext\n"
				    "ffff800080010000 T kfree\n"
				    "ffff800180000000 t far_away\t[far]\n"
				    "ffff800180001000 t farther\t[far]\n");
	struct kmon_symtab *st;
	char err[200];

	(void)state;
	assert_int_equal(ksyms__count(k), 4);
	st = kmon_symtab__open(ksyms__memfd(k), err, sizeof(err));
	assert_non_null(st);
	sym(st, ksyms__ref(k, 0xffff800080010000ull + 0x20), "kfree+0x20");
	sym(st, ksyms__ref(k, 0xffff800180000000ull + 0x8), "far_away+0x8 [far]");
	sym(st, ksyms__ref(k, 0xffff800180001004ull), "farther+0x4 [far]");
	assert_int_equal(ksyms__addr(k, (uint32_t)(ksyms__ref(k, 0xffff800180001000ull) >> 32)),
			 0xffff800180001000ull);
	kmon_symtab__free(st);
	ksyms__free(k);
}

static void test_parse_line(void **state)
{
	char l1[] = "ffffffffc0201000 t ftrace_trampoline\t[__builtin__ftrace]\n";
	char l2[] = "ffffffff82a00000 D some_data\n";
	char l3[] = "zzzz T x\n", l4[] = "ffff T\n", l5[] = "ffff t f\t[]\n";
	char l6[] = "ffff t f\t[mod\n", l7[] = "ffff tt f\n";
	const char *name, *mod;
	uint64_t a;

	(void)state;
	assert_int_equal(ksyms_parse_line(l1, &a, &name, &mod), 1);
	assert_int_equal(a, 0xffffffffc0201000ull);
	assert_string_equal(name, "ftrace_trampoline");
	assert_string_equal(mod, "__builtin__ftrace");
	assert_int_equal(ksyms_parse_line(l2, &a, &name, &mod), 0);
	assert_int_equal(ksyms_parse_line(l3, &a, &name, &mod), -EINVAL);
	assert_int_equal(ksyms_parse_line(l4, &a, &name, &mod), -EINVAL);
	assert_int_equal(ksyms_parse_line(l5, &a, &name, &mod), -EINVAL);
	assert_int_equal(ksyms_parse_line(l6, &a, &name, &mod), -EINVAL);
	assert_int_equal(ksyms_parse_line(l7, &a, &name, &mod), -EINVAL);
}

/* A table written by hand, then broken one field at a time. */
struct mini {
	struct kmon_symtab_hdr h;
	struct kmon_symtab_entry e[2];
	char pool[16];
} __attribute__((packed));

static struct mini good_table(void)
{
	struct mini m;

	memset(&m, 0, sizeof(m));
	m.h.magic = KMON_SYMTAB_MAGIC;
	m.h.version = KMON_SYMTAB_VERSION;
	m.h.source = KMON_SYMTAB_KSYM_ITER;
	m.h.n_symbols = 2;
	m.h.strings_len = sizeof(m.pool);
	m.h.total_len = sizeof(m);
	memcpy(m.pool, "kfree\0foo\0mod\0\0", 16);
	m.e[0].name_off = 0;
	m.e[0].module_off = KMON_SYMTAB_NO_MODULE;
	m.e[1].name_off = 6;
	m.e[1].module_off = 10;
	return m;
}

static void expect_bad(struct mini m, size_t len, const char *why)
{
	char err[200] = "";

	assert_null(kmon_symtab__parse(&m, len, err, sizeof(err)));
	assert_non_null(strstr(err, why));
}

static void test_parser_rejects(void **state)
{
	struct mini m = good_table();
	struct kmon_symtab *st;
	char err[200], buf[64];

	(void)state;
	st = kmon_symtab__parse(&m, sizeof(m), err, sizeof(err));
	assert_non_null(st);
	sym(st, (1ull << 32) | 0x10, "kfree+0x10");
	sym(st, (2ull << 32) | 0x3, "foo+0x3 [mod]");
	assert_int_equal(kmon_symtab__symbolize(st, 3ull << 32, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(kmon_symtab__symbolize(st, 0x10, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(kmon_symtab__symbolize(st, 1ull << 32, buf, 4), -ENOSPC);
	assert_string_equal(buf, "kfr");
	kmon_symtab__free(st);

	expect_bad(m, sizeof(m) - 1, "sizes disagree");
	expect_bad(m, 8, "shorter than its header");
	m = good_table(); m.h.magic ^= 1; expect_bad(m, sizeof(m), "bad magic");
	m = good_table(); m.h.version = 2; expect_bad(m, sizeof(m), "version");
	m = good_table(); m.h.source = 9; expect_bad(m, sizeof(m), "unknown source");
	m = good_table(); m.h.reserved = 1; expect_bad(m, sizeof(m), "reserved");
	m = good_table(); m.h.n_symbols = 3; expect_bad(m, sizeof(m), "sizes disagree");
	m = good_table(); m.h.n_symbols = 0xffffffffu; expect_bad(m, sizeof(m), "more than");
	m = good_table(); m.h.strings_len = 0xfffffff0u; expect_bad(m, sizeof(m), "sizes disagree");
	m = good_table(); m.pool[15] = 'x'; expect_bad(m, sizeof(m), "not NUL-terminated");
	m = good_table(); m.e[1].name_off = 16; expect_bad(m, sizeof(m), "outside the string pool");
	m = good_table(); m.e[0].module_off = 0x7fffffff; expect_bad(m, sizeof(m), "outside");
}

/* A descriptor that is not sealed is refused, whatever it holds. */
static void test_open_needs_seals(void **state)
{
	struct mini m = good_table();
	int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	char err[200];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, &m, sizeof(m)), (ssize_t)sizeof(m));
	assert_null(kmon_symtab__open(fd, err, sizeof(err)));
	assert_non_null(strstr(err, "not a sealed memfd"));
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), 0);
	assert_null(kmon_symtab__open(fd, err, sizeof(err))); /* F_SEAL_SEAL missing */
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL), 0);
	kmon_symtab__free(kmon_symtab__open(fd, err, sizeof(err)));
	close(fd);
}

static struct kmon_event mem_event(uint32_t type, uint64_t ptr, uint64_t site)
{
	struct kmon_event e;

	memset(&e, 0, sizeof(e));
	e.event_type = type;
	e.version = KMON_EVENT_VERSION;
	e.pid = 42;
	memcpy(e.comm, "leaky", 5);
	e.size = 64;
	e.data.mem.ptr = ptr;
	e.data.mem.call_site = site;
	return e;
}

static void test_addrmask(void **state)
{
	struct ksyms *k = load();
	struct addrmask *m = addrmask__new(k, false), *m2 = addrmask__new(k, false);
	struct addrmask *raw = addrmask__new(k, true);
	struct kmon_event a = mem_event(KMON_EV_MEMORY_ALLOC, 0xffff888104a3c000ull,
					0xffffffff81e8c570ull + 0x7e);
	struct kmon_event f = mem_event(KMON_EV_MEMORY_FREE, 0xffff888104a3c000ull,
					0xffffffff816487f0ull + 0x1a4);
	struct kmon_event o = mem_event(KMON_EV_SLAB_ALLOC, 0xffff888104a3c040ull, 0);
	struct kmon_event x = mem_event(KMON_EV_PROCESS_EXEC, 0, 0);
	struct kmon_event r = a;
	struct kmon_event saved_x;

	(void)state;
	assert_non_null(m);
	f.flags = KMON_EVF_OWNER_CHARGED;
	f.data.free.alloc_call_site = 0xffffffff81647de0ull + 0x20;
	memcpy(x.data.filename, "/bin/true", 9);
	saved_x = x;
	addrmask__apply(m, &a);
	addrmask__apply(m, &f);
	addrmask__apply(m, &o);
	addrmask__apply(m, &x);
	addrmask__apply(raw, &r);
	/* The pair still matches, and says nothing of the address. */
	assert_true(a.data.mem.ptr == f.data.mem.ptr);
	assert_true(a.data.mem.ptr != 0xffff888104a3c000ull);
	assert_true(a.data.mem.ptr < (1ull << 63));
	assert_true(o.data.mem.ptr != a.data.mem.ptr);
	/* Another agent (another key): another id. */
	assert_true(addrmask__ptr_id(m2, 0xffff888104a3c000ull) != a.data.mem.ptr);
	assert_true(a.flags & KMON_EVF_ADDR_OPAQUE);
	assert_true(f.flags & KMON_EVF_ADDR_OPAQUE);
	assert_int_equal(o.data.mem.call_site, 0);
	assert_memory_equal(&x, &saved_x, sizeof(x));
	assert_int_equal(r.data.mem.ptr, 0xffff888104a3c000ull);
	assert_int_equal(r.data.mem.call_site, 0xffffffff81e8c570ull + 0x7e);
	assert_false(r.flags & KMON_EVF_ADDR_OPAQUE);
	{
		char err[200], line[KMON_EVENT_JSON_MAX];
		struct kmon_symtab *st = kmon_symtab__open(ksyms__memfd(k), err, sizeof(err));
		int n;

		assert_non_null(st);
		n = event_json__write_sym(line, sizeof(line), &a, NULL, "n", 0, st);
		assert_true(n > 0);
		assert_non_null(strstr(line, "\"call_site\":\"kmalloc_reserve+0x7e\""));
		assert_null(strstr(line, "ffff888104a3c000"));
		n = event_json__write_sym(line, sizeof(line), &f, NULL, "n", 0, st);
		assert_true(n > 0);
		/* (merge of h3 and h4: the owner fields of h3 sit between the two) */
		assert_non_null(strstr(line, "\"call_site\":\"kfree+0x1a4\","));
		assert_non_null(strstr(line, "\"alloc_call_site\":\"__kmalloc_noprof+0x20\""));
		n = event_json__write_sym(line, sizeof(line), &o, NULL, "n", 0, st);
		assert_non_null(strstr(line, "\"call_site\":null"));
		/* Raw mode: hex, as before. */
		n = event_json__write_sym(line, sizeof(line), &r, NULL, "n", 0, st);
		assert_non_null(strstr(line, "\"ptr\":\"0xffff888104a3c000\","
					     "\"call_site\":\"0xffffffff81e8c5ee\""));
		kmon_symtab__free(st);
	}
	addrmask__free(m);
	addrmask__free(m2);
	addrmask__free(raw);
	ksyms__free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_resolves_like_kallsyms),
		cmocka_unit_test(test_memfd_sealed_and_addressless),
		cmocka_unit_test(test_none_says_why),
		cmocka_unit_test(test_zero_addresses_refused),
		cmocka_unit_test(test_wide_span_resolves),
		cmocka_unit_test(test_parse_line),
		cmocka_unit_test(test_parser_rejects),
		cmocka_unit_test(test_open_needs_seals),
		cmocka_unit_test(test_addrmask),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
