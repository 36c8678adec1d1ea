#!/usr/bin/env python3
"""The README's generated cost region (tests/bench/report.py), as a partial
run (--only --write-readme) rewrites it: the rows that run measured again
replace theirs, figure by figure (a note in parentheses may differ), every
other row stays; the run's header joins the earlier ones, or with
--sole-header takes their place; nothing outside the markers changes.
And target 5's judgement (run_bench.report_fanout): on the pairs whose
1-consumer flood ran at the top speed, whatever the rest did. And targets
6 and 7's rows: each against its baseline of the same run, and results saved
before the baselines existed still give their figures."""
import os
from statistics import median
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import BEGIN, END, REPORT, write_readme  # noqa: E402
import run_bench  # noqa: E402

HEAD = "| target | figure | value | baseline | ratio | spread (rounds) | goal | result |\n" \
       "|---|---|---|---|---|---|---|---|\n"
OLD = ("# kmon\n\nbefore\n\n" + BEGIN + "\n\n"
       "Generated from `run_bench.py` on 2026-11-29 23:53 UTC, kernel k, 2 vCPUs. Old note.\n\n"
       + HEAD +
       "| 1 | loop (0 kernel drops) | 8,834 ns/iter | 7,941 bpftrace | 1.113 | (5) "
       "| ratio <= 1.1 | **miss** |\n"
       "| 7 | first drop, 1 consumer | 1,345,528 events/s |  |  | (1) |  | info |\n"
       + END + "\n\nafter\n")
NEW = (HEAD + "| 1 | loop (1 kernel drops) | 5,805 ns/iter | 6,140 bpftrace | 0.944 | (5) "
       "| ratio <= 1.1 | **pass** |\n")
HEADER = "Rows of `run_bench.py --only kernel` on 2026-11-30 02:30 UTC, kernel k, 2 vCPUs. New."


class MergedRegionTest(unittest.TestCase):
    def rewrite(self, sole):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "README.md")
            with open(path, "w") as f:
                f.write(OLD)
            write_readme(path, NEW, None, header=HEADER, partial=True,
                         rows=[{"target": "1", "what": "loop"}], sole_header=sole)
            with open(path) as f:
                return f.read()

    def test_rows_measured_again_replace_theirs_the_rest_stay(self):
        out = self.rewrite(False)
        self.assertNotIn("8,834", out)
        self.assertIn("| 1 | loop (1 kernel drops) | 5,805 ns/iter", out)
        self.assertIn("| 7 | first drop, 1 consumer | 1,345,528 events/s", out)
        self.assertLess(out.index("| 1 | loop"), out.index("| 7 | first drop"))
        self.assertTrue(out.startswith("# kmon\n\nbefore\n\n" + BEGIN))
        self.assertTrue(out.endswith(END + "\n\nafter\n"))

    def test_header_joins_the_earlier_ones(self):
        out = self.rewrite(False)
        self.assertIn("Old note.", out)
        self.assertIn("New.", out)
        self.assertLess(out.index("Old note."), out.index("New."))

    def test_sole_header_replaces_them(self):
        out = self.rewrite(True)
        self.assertNotIn("Old note.", out)
        self.assertEqual(out.count("`run_bench.py"), 1)
        self.assertIn(HEADER, out)
        self.assertIn("| 7 | first drop, 1 consumer", out)


def pair(one, four):
    return {"events_per_s_1": one, "events_per_s_per_consumer_4": four, "lost_4": 0,
            "kernel_dropped_all_pairs": 0}


class FanoutJudgementTest(unittest.TestCase):
    def rows(self, pairs):
        REPORT.rows.clear()
        run_bench.report_fanout([], [], pairs)
        return [r for r in REPORT.rows if r["target"] == "5"]

    def test_two_speeds_judged_at_the_top_one(self):
        # Pairs at the slow speed pass by far; the top-speed pairs miss, and
        # so does the goal, though the median of all eight would pass.
        pairs = [pair(2600000, 2300000), pair(1650000, 2300000),
                 pair(2550000, 2290000), pair(1640000, 1620000),
                 pair(2580000, 2320000), pair(1660000, 1640000),
                 pair(1700000, 2310000), pair(1620000, 1600000)]
        self.assertGreater(median(p["events_per_s_per_consumer_4"] / p["events_per_s_1"]
                                  for p in pairs), 0.95)
        rows = self.rows(pairs)
        goal, slower = rows[0], rows[1]
        self.assertEqual(goal["rounds"], 3)
        self.assertAlmostEqual(goal["ratio"], 2290000 / 2550000, places=3)
        self.assertEqual(goal["result"], "miss")
        self.assertEqual(slower["rounds"], 5)
        self.assertEqual(slower["result"], "info")

    def test_default_rings_judged_16_mib_beside(self):
        # Target 5 is at default settings: the pairs with the agent's
        # default ring are judged, the 16 MiB ones are shown without a goal.
        pairs = [dict(pair(2600000, 2000000), ring="default") for _ in range(3)] + \
            [dict(pair(2600000, 2550000), ring=16 << 20) for _ in range(3)]
        rows = self.rows(pairs)
        self.assertEqual(len(rows), 2)
        self.assertIn("default 4 MiB rings", rows[0]["what"])
        self.assertEqual(rows[0]["result"], "miss")
        self.assertIn("16 MiB rings", rows[1]["what"])
        self.assertEqual(rows[1]["result"], "info")

    def test_shared_history_judged_private_copies_beside(self):
        # The agent's defaults (consumers reading the shared history) are
        # judged; the same consumers with --private-ring are only shown.
        pairs = [dict(pair(2600000, 2550000), ring="default", mode="shared")
                 for _ in range(3)] + \
            [dict(pair(2600000, 2000000), ring="default", mode="private") for _ in range(3)]
        rows = self.rows(pairs)
        self.assertEqual(len(rows), 2)  # one per mode: all pairs at one speed, no CPU columns
        self.assertIn("shared history", rows[0]["what"])
        self.assertEqual(rows[0]["result"], "pass")
        private = [r for r in rows if "--private-ring" in r["what"]]
        self.assertEqual({r["result"] for r in private}, {"info"})

    def test_one_speed_every_pair_judged(self):
        rows = self.rows([pair(2000000 + i * 10000, 1950000) for i in range(6)])
        self.assertEqual(rows[0]["rounds"], 6)
        self.assertEqual(rows[0]["result"], "pass")
        self.assertEqual(len(rows), 1)


def drop(k, rnd, first, best):
    r = {"consumers": k, "first_drop_at_events_per_s": first,
         "offered_at_first_drop": "300000 it/s" if first else "none up to flat out",
         "dropped_then": 5 if first else 0, "highest_events_per_s_without_drop": best,
         "agent_cpu_ns_per_event_by_rate": [[best, 50.0]]}
    if rnd:
        r["round"] = rnd
    return r


class SameRunBaselinesTest(unittest.TestCase):
    def rows(self, fn, *args):
        REPORT.rows.clear()
        fn(*args)
        return {r["what"].split(",")[-1].strip(): r for r in REPORT.rows}

    def test_first_drop_against_one_consumer_of_the_same_round(self):
        rows = self.rows(run_bench.report_first_drop, [
            drop(1, 1, None, 2600000), drop(4, 1, None, 2080000),
            drop(4, 2, 1500000, 1400000), drop(1, 2, None, 1600000)])
        four = rows["4 consumers"]
        self.assertEqual(four["rounds"], 2)
        # 2.08/2.6 and 1.5/1.6: ratios per round, not of medians across them
        self.assertAlmostEqual(four["ratio"], median([0.8, 1500000 / 1600000]), places=4)
        self.assertIn("dropped in 1 of 2 rounds, offered 300000 it/s", four["note"])
        self.assertIsNone(rows["1 consumer"]["baseline"])

    def test_first_drop_saved_before_rounds(self):
        rows = self.rows(run_bench.report_first_drop, [drop(1, 0, None, 2700000),
                                                       drop(16, 0, None, 1200000)])
        self.assertEqual(rows["16 consumers"]["figure"], 1200000)
        self.assertAlmostEqual(rows["16 consumers"]["ratio"], 1200000 / 2700000, places=4)

    def test_stall_against_the_same_flood_without_rescans(self):
        REPORT.rows.clear()
        run_bench.report_tracked([
            {"tracked_pids": 102, "kernel_dropped": 0, "scan_ms": [3.0, 5.0, 4.0],
             "drain_stall_max_ms": [4.0, 0.2], "drain_stall_max_ms_no_rescan": [0.1, 0.4]},
            {"tracked_pids": 10002, "kernel_dropped": 0, "scan_ms": [200.0, 210.0],
             "drain_stall_max_ms": [1.0, 1.2], "drain_stall_max_ms_no_rescan": [0.5, 0.6]}],
            {"pids": 100000, "batch_us": 33000.0, "batch_us_rounds": [33000.0, 35000.0],
             "one_by_one_us_rounds": [130000.0, 140000.0]})
        by = {r["what"]: r for r in REPORT.rows}
        stall = by["longest drain stall, flood while scanning 102 PIDs every second"]
        self.assertAlmostEqual(stall["ratio"], median([40.0, 0.5]))
        self.assertEqual(stall["baseline_what"], "same flood, no rescan during it")
        big = by["/proc scan with 10002 tracked PIDs"]
        self.assertAlmostEqual(big["ratio"], median([200.0, 210.0]) / 4.0)
        self.assertIsNone(by["/proc scan with 102 tracked PIDs"]["baseline"])
        pm = by["PID map re-assertion per scan, 100000 PIDs (batched)"]
        self.assertEqual(pm["rounds"], 2)
        self.assertAlmostEqual(pm["ratio"], median([33 / 130, 35 / 140]), places=4)

    def test_tracked_saved_before_the_baselines(self):
        REPORT.rows.clear()
        run_bench.report_tracked([{"tracked_pids": 102, "kernel_dropped": 0, "scan_ms": 2.97,
                                   "drain_stall_max_ms": 0.1}],
                                 {"pids": 100000, "batch_us": 33000.0})
        figs = [(r["figure"], r["baseline"]) for r in REPORT.rows]
        self.assertEqual(figs, [(2.97, None), (0.1, None), (33.0, None)])

    def test_memory_against_the_small_container(self):
        def mem(pids, pods, own, heap, base):
            return {"tracked_pids": pids, "pods": pods, "own_private_mib": own,
                    "malloc main heap (MiB)": heap, "baseline": base}
        REPORT.rows.clear()
        run_bench.report_memory([mem(3, 1, 11.9, 0.4, True), mem(3, 1, 12.1, 0.5, True),
                                 mem(10002, 110, 13.9, 2.4, False),
                                 mem(10002, 110, 14.1, 2.5, False)])
        goal, heap = REPORT.rows
        self.assertEqual(goal["baseline_what"], "3 PIDs, 1 pod")
        self.assertAlmostEqual(goal["ratio"], median([13.9 / 12.0, 14.1 / 12.0]), places=4)
        self.assertEqual(goal["result"], "pass")
        # (14.0 - 12.0) MiB over 9,999 more PIDs
        self.assertIn("%.0f bytes more per tracked PID" % (2.0 * 1048576 / 9999), goal["note"])
        self.assertAlmostEqual(heap["baseline"], 0.45)
        REPORT.rows.clear()
        run_bench.report_memory([mem(10002, 110, 13.9, 2.4, None)])
        self.assertIsNone(REPORT.rows[0]["baseline"])
        self.assertEqual(REPORT.rows[0]["note"], "")


if __name__ == "__main__":
    unittest.main(verbosity=2)
