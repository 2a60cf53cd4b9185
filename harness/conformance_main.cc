// nanguard_conformance: runs the ONNX backend node tests through the executor, prints
// a table per op type and, last, "conformance: N op types, P passed, F failed, S skipped"
// (N: op types with at least one passing test). With --known FILE it exits 1 when a
// test listed there (a previous pass) no longer passes; --update-known rewrites FILE.
#include <fstream>
#include <iostream>
#include <map>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "harness/conformance.h"

namespace {

struct OpRow {
  int passed = 0, failed = 0, skipped = 0;
};

std::set<std::string> read_known(const std::string& path) {
  std::set<std::string> known;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') known.insert(line);
  return known;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"run the ONNX backend node tests through nanguard's executor"};
  std::vector<std::string> suites;
  std::string known_path, filter;
  bool update_known = false, verbose = false;
  app.add_option("suites", suites, "suite folders (e.g. .../libonnx-testdata/data/node)")->required();
  app.add_option("--known", known_path, "file of tests that passed before (one per line)");
  app.add_flag("--update-known", update_known, "rewrite --known with the tests passing now");
  app.add_option("--filter", filter, "only tests whose name contains this");
  app.add_flag("-v,--verbose", verbose, "print every test's verdict");
  CLI11_PARSE(app, argc, argv);

  using nanguard::Verdict;
  std::map<std::string, OpRow> rows;
  std::vector<nanguard::ConformanceResult> results;
  for (const auto& [dir, label] : nanguard::list_conformance_tests(suites)) {
    if (!filter.empty() && label.find(filter) == std::string::npos) continue;
    auto r = nanguard::run_conformance_test(dir, label);
    for (const auto& op : r.op_types) {
      OpRow& row = rows[op];
      (r.verdict == Verdict::kPassed ? row.passed : r.verdict == Verdict::kFailed ? row.failed : row.skipped)++;
    }
    if (verbose) std::cout << label << ": " << (r.verdict == Verdict::kPassed ? "passed" : r.verdict == Verdict::kFailed ? "FAILED " + r.reason : "skipped " + r.reason) << "\n";
    results.push_back(std::move(r));
  }
  int passed = 0, failed = 0, skipped = 0, op_types = 0;
  std::cout << fmt::format("{:<34} {:>6} {:>6} {:>6}\n", "op type", "passed", "failed", "skipped");
  for (const auto& [op, row] : rows) {
    std::cout << fmt::format("{:<34} {:>6} {:>6} {:>6}\n", op, row.passed, row.failed, row.skipped);
    if (row.passed > 0) ++op_types;
  }
  std::cout << "\nfailures and skips:\n";
  for (const auto& r : results) {
    if (r.verdict == Verdict::kPassed) { ++passed; continue; }
    (r.verdict == Verdict::kFailed ? failed : skipped)++;
    std::cout << fmt::format("  {} {}: {}\n", r.verdict == Verdict::kFailed ? "FAIL" : "skip", r.test, r.reason);
  }
  int rc = 0;
  if (!known_path.empty() && update_known) {
    std::ofstream out(known_path, std::ios::trunc);
    out << "# tests that pass; regenerate with scripts/conformance --update-known\n";
    for (const auto& r : results) if (r.verdict == Verdict::kPassed) out << r.test << "\n";
  } else if (!known_path.empty()) {
    std::set<std::string> known = read_known(known_path);
    for (const auto& r : results) {
      if (known.count(r.test) && r.verdict != Verdict::kPassed) {
        std::cout << fmt::format("REGRESSION: {} passed before and now {}: {}\n", r.test,
                                 r.verdict == Verdict::kFailed ? "fails" : "is skipped", r.reason);
        rc = 1;
      }
    }
  }
  std::cout << fmt::format("conformance: {} op types, {} passed, {} failed, {} skipped\n", op_types, passed, failed, skipped);
  return rc;
}
