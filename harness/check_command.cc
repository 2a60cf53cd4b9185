// `nanguard check`: the main job in one command. Analyze, trigger every finding,
// fix (auto), validate the fix; one report. With --out DIR: report.json,
// report.sarif, report.html, reproducers/ and fixed.onnx, the folder written whole
// or not at all. Exit 0 when the model is proved free of NaN/INF, 1 when it has
// findings (even when a fixed model was written: the model as given is not safe),
// 2 on errors.
#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "harness/check.h"
#include "harness/check_report.h"
#include "harness/cli_common.h"
#include "harness/commands.h"
#include "harness/html_report.h"
#include "model/patch.h"

namespace nanguard {
namespace {

namespace fs = std::filesystem;

struct CheckArgs {
  CommonArgs common;
  std::string weights = "fixed";
  std::string out;
  double budget = 10;
  int64_t samples = 200;
  bool quiet = false;
  bool ort = false;
};

// --ort: the reproducers replayed in ONNX Runtime by scripts/replay-ort (npm's
// onnxruntime-node), each witness marked with whether that runtime fails too.
Status replay_in_ort(const fs::path& dir, CheckReport& r) {
  if (!fs::exists(dir / "reproducers")) return Status::Ok();
  std::string script = std::string(NANGUARD_SOURCE_DIR) + "/scripts/replay-ort";
  std::string cmd = fmt::format("/usr/bin/python3 '{}' --json '{}' 2>&1", script, (dir / "reproducers").string());
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return Status::Error("--ort: cannot run scripts/replay-ort");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int status = pclose(pipe);
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.is_array())
    return Status::Error(fmt::format("--ort: scripts/replay-ort failed (exit {}): {}", WEXITSTATUS(status), out.substr(0, 300)));
  for (CheckFinding& cf : r.findings)
    for (const auto& row : j)
      if (fs::path(row.value("reproducer", "")).filename() == fs::path(cf.reproducer).filename() && !cf.reproducer.empty())
        cf.onnxruntime = row["reproduced"].is_null() ? "n/a: " + row.value("detail", "")
                         : row["reproduced"].get<bool>() ? "reproduced" : "not-reproduced";
  return Status::Ok();
}

Status write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
  f.close();
  if (!f) return Status::Error(fmt::format("{}: cannot write", p.string()));
  return Status::Ok();
}

// The folder the reports go to is built beside DIR and renamed into place; an
// existing DIR is replaced only when it is an earlier report (it holds report.json).
Result<fs::path> staging_dir(const std::string& out) {
  fs::path dir(out);
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec) && !fs::exists(dir / "report.json", ec))
    return Status::Error(fmt::format("{}: exists and is not a nanguard report folder; give a new or empty --out", out));
  fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) return Status::Error(fmt::format("{}: no such folder", parent.string()));
  fs::path tmp = parent / fmt::format(".{}.partial-{}", dir.filename().string(), getpid());
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec)) return Status::Error(fmt::format("{}: cannot create folder: {}", tmp.string(), ec.message()));
  return tmp;
}

Status publish(const fs::path& tmp, const std::string& out) {
  std::error_code ec;
  fs::remove_all(out, ec);
  fs::rename(tmp, out, ec);
  if (ec) return Status::Error(fmt::format("{}: cannot move the report into place: {}", out, ec.message()));
  return Status::Ok();
}

Status write_reports(const CheckReport& r, const Graph& g, const fs::path& dir) {
  std::string fixed;
  if (r.fixed_written) {
    std::ifstream f(dir / "fixed.onnx", std::ios::binary);
    fixed.assign(std::istreambuf_iterator<char>(f), {});
  }
  if (Status s = write_file(dir / "report.json", check_json(r).dump(2) + "\n"); !s.ok()) return s;
  if (Status s = write_file(dir / "report.sarif", check_sarif(r, fixed)); !s.ok()) return s;
  return write_file(dir / "report.html", check_html(r, g));
}

Result<CheckOptions> options(const CheckArgs& a, const LoadedModel& m, Progress* progress) {
  CheckOptions o;
  if (Status s = parse_weights_flag(a.weights, o.analyze); !s.ok()) return s;
  o.analyze.ranges = m.ranges;
  auto lo = load_options(a.common);
  if (!lo.ok()) return lo.status();
  o.load = *lo;
  o.load.precision = Precision::kNative;  // patched models are already in the precision
  o.weights_flag = a.weights;
  o.budget_seconds = a.budget;
  o.samples = a.samples;
  o.progress = progress;
  if (a.common.device == "cuda") {
    auto d = parse_device("cuda");
    if (!d.ok()) return d.status();
    o.devices.push_back(*d);
  }
  return o;
}

int run(const CheckArgs& a) {
  auto m = load_with_ranges(a.common);
  if (!m.ok()) return usage_error(m.status());
  auto raw = read_model_patch(a.common);
  if (!raw.ok()) return usage_error(raw.status());
  Progress progress(a.quiet);
  auto o = options(a, *m, &progress);
  if (!o.ok()) return usage_error(o.status());
  std::optional<fs::path> tmp;
  if (!a.out.empty()) {
    auto t = staging_dir(a.out);
    if (!t.ok()) return usage_error(t.status());
    tmp = *t;
    o->out_dir = tmp->string();
  }
  auto fail = [&](const Status& s) {
    std::error_code ec;
    if (tmp) fs::remove_all(*tmp, ec);
    return usage_error(s);
  };
  auto r = run_check(raw->proto(), m->graph, *o);
  if (!r.ok()) return fail(r.status());
  if (tmp && a.ort)
    if (Status s = replay_in_ort(*tmp, *r); !s.ok()) return fail(s);
  if (tmp) {
    if (Status s = write_reports(*r, m->graph, *tmp); !s.ok()) return fail(s);
    if (Status s = publish(*tmp, a.out); !s.ok()) return fail(s);
  }
  std::string text = a.common.format == "json"    ? check_json(*r).dump(2) + "\n"
                     : a.common.format == "sarif" ? check_sarif(*r, "")
                                                  : check_text(*r, a.out);
  if (Status s = emit(a.common, text); !s.ok()) return usage_error(s);
  return r->proved() ? 0 : 1;
}

}  // namespace

CommandFn add_check_command(CLI::App& app) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* cmd = app.add_subcommand(
      "check", "the main job: analyze, trigger each finding, fix it, validate the fix; one report (exit 0 only when proved safe)");
  add_model_flags(*cmd, args->common);
  add_range_flags(*cmd, args->common);
  cmd->add_option("--weights", args->weights, "fixed (default), free, or free=LO,HI");
  cmd->add_option("--budget", args->budget,
                  "search seconds per finding, and for the attacks on the fix together (default 10; 0: no search)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--samples", args->samples, "in-range samples for validation and agreement (default 200)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--out", args->out,
                  "write report.json, report.sarif, report.html, reproducers/ and fixed.onnx into DIR (replaced whole)");
  cmd->add_option("--format", args->common.format, "stdout: text (default), json or sarif")
      ->check(CLI::IsMember({"text", "json", "sarif"}));
  cmd->add_option("-o,--output", args->common.output, "write the stdout report to FILE instead");
  cmd->add_flag("--quiet", args->quiet, "no progress lines on stderr");
  cmd->add_flag("--ort", args->ort,
                "with --out: replay each reproducer in ONNX Runtime too (scripts/replay-ort; installs onnxruntime-node "
                "with npm on first use)");
  return [cmd, args]() -> int { return cmd->parsed() ? run(*args) : -1; };
}

}  // namespace nanguard
