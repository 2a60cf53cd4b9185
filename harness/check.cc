#include "harness/check.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <fmt/core.h>

#include "harness/reproducer.h"

namespace nanguard {
namespace {

namespace fs = std::filesystem;

void note(const CheckOptions& o, const std::string& line) {
  if (o.progress) o.progress->note(line);
}

// The first line a user sees: what will run and what it may cost.
void announce(const CheckOptions& o, const Graph& g, size_t findings) {
  if (findings == 0) return;
  double agreement = std::max(10.0, o.budget_seconds);
  double worst = findings * o.budget_seconds + o.budget_seconds + agreement;
  note(o, fmt::format("{}: {} finding(s); trigger searches up to {:.0f} s each, then fix, then validate (up to {:.0f} s "
                      "of attacks and {:.0f} s of agreement): about {:.0f} s plus the fix",
                      g.model_path, findings, o.budget_seconds, o.budget_seconds, agreement, worst));
}

Status write_reproducers(const Graph& g, const CheckOptions& o, std::vector<CheckFinding>& findings) {
  if (o.out_dir.empty()) return Status::Ok();
  for (size_t i = 0; i < findings.size(); ++i) {
    CheckFinding& cf = findings[i];
    if (!cf.trigger || cf.trigger->status != "triggered") continue;
    const TriggerOutcome& t = *cf.trigger;
    ReproducerSpec spec = reproducer_spec(g, t);
    std::string rel = (fs::path("reproducers") / reproducer_dir_name(i, t.finding)).string();
    if (Status s = write_reproducer(g, spec, (fs::path(o.out_dir) / rel).string()); !s.ok()) return s;
    cf.reproducer = rel;
  }
  return Status::Ok();
}

// The original's witnesses as replay cases for the fixed model: runtime inputs, and
// free weights under the names the fixed model still has.
std::vector<ReplayCase> replay_cases(const std::vector<CheckFinding>& findings, const Graph& fixed) {
  std::vector<ReplayCase> cases;
  for (const CheckFinding& cf : findings) {
    if (!cf.trigger || cf.trigger->status != "triggered") continue;
    ReplayCase c{cf.reproducer.empty() ? cf.finding.node : cf.reproducer, cf.finding, {}};
    for (const auto& [name, v] : cf.trigger->system.point) {
      bool input = std::find(fixed.inputs.begin(), fixed.inputs.end(), name) != fixed.inputs.end();
      if (!input && !fixed.is_initializer(name)) continue;
      const TensorType* type = fixed.type_of(name);
      c.feeds[name] = type && type->elem_type == onnx::TensorProto::FLOAT ? v.to(at::kFloat) : v;
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

Status run_trigger(const Graph& graph, const CheckOptions& o, CheckReport& r) {
  if (o.budget_seconds <= 0) return Status::Ok();
  TriggerOptions to;
  to.analyze = o.analyze;
  to.budget_seconds = o.budget_seconds;
  to.devices = o.devices;
  to.progress = [&o](size_t i, size_t n, const Finding* f) {
    if (o.progress && f)
      o.progress->step(fmt::format("trigger: finding {} of {}, {} ({})", i + 1, n, f->node, f->hazard), o.budget_seconds);
  };
  auto t = trigger(graph, to);
  if (!t.ok()) return t.status();
  for (CheckFinding& cf : r.findings)
    for (const TriggerOutcome& out : t->outcomes)
      if (out.finding.node == cf.finding.node && out.finding.hazard == cf.finding.hazard) {
        cf.trigger = out;
        cf.status = out.status;
      }
  size_t hit = std::count_if(r.findings.begin(), r.findings.end(), [](const CheckFinding& c) { return c.status == "triggered"; });
  note(o, fmt::format("trigger: {} of {} finding(s) triggered by a real float32 run", hit, r.findings.size()));
  return Status::Ok();
}

Status run_fix(const onnx::ModelProto& proto, const Graph& graph, const CheckOptions& o, CheckReport& r) {
  if (o.progress) o.progress->step("fix: a proved fix per finding (--at auto)", 0);
  FixOptions fo;
  fo.analyze = o.analyze;
  fo.load = o.load;
  auto f = fix_model(proto, graph, fo);
  if (!f.ok()) return f.status();
  for (CheckFinding& cf : r.findings)
    for (const FindingFix& fx : f->fixes)
      if (fx.finding.node == cf.finding.node && fx.finding.hazard == cf.finding.hazard) cf.fix = fx;
  size_t fixed = std::count_if(f->fixes.begin(), f->fixes.end(), [](const FindingFix& x) { return x.status == "fixed"; });
  note(o, fmt::format("fix: {} of {} finding(s) fixed and proved", fixed, f->fixes.size()));
  if (f->changed) {
    auto g = load_model_proto(f->patched.proto(), graph.model_path, o.load);
    if (!g.ok()) return Status::Error(fmt::format("the fixed model does not load: {}", g.status().message()));
    r.fixed_graph = std::move(*g);
    if (!o.out_dir.empty()) {
      if (Status s = f->patched.write((fs::path(o.out_dir) / "fixed.onnx").string()); !s.ok()) return s;
      r.fixed_written = true;
    }
  }
  r.fix = std::move(*f);
  return Status::Ok();
}

Status run_validate(const Graph& graph, const CheckOptions& o, CheckReport& r) {
  if (!r.fixed_graph) return Status::Ok();
  if (o.progress) o.progress->step("validate: proof and attacks on the fixed model", o.budget_seconds);
  ValidateOptions vo;
  vo.analyze = o.analyze;
  vo.budget_seconds = o.budget_seconds;
  vo.samples = o.samples;
  vo.agreement_seconds = std::max(10.0, o.budget_seconds);  // big models: a bounded check
  vo.reproducers = replay_cases(r.findings, *r.fixed_graph);
  auto v = validate_fix(*r.fixed_graph, &graph, vo);
  if (!v.ok()) return v.status();
  r.validation = std::move(*v);
  note(o, fmt::format("validate: {} ({} attack runs, {} failures)", r.validation->verdict(), r.validation->runs(),
                      r.validation->failures()));
  return Status::Ok();
}

}  // namespace

Result<CheckReport> run_check(const onnx::ModelProto& proto, const Graph& graph, const CheckOptions& o) {
  auto start = std::chrono::steady_clock::now();
  auto seconds = [&start] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  CheckReport r;
  r.model_path = graph.model_path;
  r.weights = o.weights_flag;
  r.ranges = o.analyze.ranges;
  if (o.progress) o.progress->step("analyze: interval bounds for every tensor", 0);
  auto a = analyze(graph, o.analyze);
  if (!a.ok()) return a.status();
  r.analysis = std::move(*a);
  for (const Finding& f : r.analysis.findings) r.findings.push_back(CheckFinding{f});
  if (r.findings.empty()) {
    note(o, fmt::format("{}: proved: no op can produce NaN/INF in these ranges{}", graph.model_path,
                        chains_gradients(graph, o.analyze) ? "" : " (gradients checked op by op)"));
    r.seconds = seconds();
    return r;
  }
  announce(o, graph, r.findings.size());
  if (Status s = run_trigger(graph, o, r); !s.ok()) return s;
  if (r.proved()) {
    note(o, fmt::format("{}: proved: every finding refuted by a finer analysis", graph.model_path));
    r.seconds = seconds();
    return r;
  }
  if (Status s = write_reproducers(graph, o, r.findings); !s.ok()) return s;
  // The fix and its validation prove with the analysis that refuted the false alarms,
  // so they neither fix nor report what cannot happen.
  CheckOptions later = o;
  if (r.refuted() > 0) later.analyze = refutation_options(o.analyze);
  if (Status s = run_fix(proto, graph, later, r); !s.ok()) return s;
  if (Status s = run_validate(graph, later, r); !s.ok()) return s;
  for (CheckFinding& cf : r.findings)
    if (cf.fix && cf.fix->status == "fixed" && r.fix_holds()) cf.status = "fixed";
  r.seconds = seconds();
  return r;
}

}  // namespace nanguard
