#include "harness/fuzz/fuzz_config.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace nanguard::fuzz {

using json = nlohmann::json;

std::string config_json(const FuzzConfig& c) {
  json slots = json::array();
  for (const auto& s : c.layout.slots)
    slots.push_back({{"name", s.name}, {"shape", s.shape}, {"elem_type", s.elem_type}, {"lo", s.lo}, {"hi", s.hi},
                     {"integer", s.integer}, {"weight", s.weight}});
  json findings = json::array();
  for (const auto& f : c.findings)
    findings.push_back({{"node", f.node}, {"op", f.op}, {"kind", f.kind}, {"hazard", f.hazard}, {"operand", f.operand}});
  json baseline = json::array();
  for (const auto& [node, hazard] : c.baseline) baseline.push_back({{"node", node}, {"hazard", hazard}});
  json dict = json::array();
  for (const auto& e : c.dictionary) dict.push_back({{"value", e.value}, {"why", e.why}});
  json j{{"model", c.model}, {"source_model", c.source_model}, {"weights", c.weights}, {"dims", c.dims},
         {"bytes", c.layout.bytes()}, {"slots", slots}, {"findings", findings}, {"baseline", baseline},
         {"dictionary", dict}};
  return j.dump(1) + "\n";
}

namespace {

FuzzConfig from_json(const json& j) {
  FuzzConfig c;
  c.model = j.at("model").get<std::string>();
  c.source_model = j.value("source_model", "");
  c.weights = j.value("weights", "fixed");
  c.dims = j.value("dims", std::map<std::string, int64_t>{});
  for (const auto& s : j.at("slots"))
    c.layout.slots.push_back({s.at("name").get<std::string>(), s.at("shape").get<std::vector<int64_t>>(),
                              s.value("elem_type", 1), s.at("lo").get<double>(), s.at("hi").get<double>(),
                              s.value("integer", false), s.value("weight", false)});
  for (const auto& f : j.value("findings", json::array()))
    c.findings.push_back({f.at("node").get<std::string>(), f.value("op", ""), f.value("kind", "forward"),
                          f.at("hazard").get<std::string>(), f.value("operand", 0)});
  for (const auto& b : j.value("baseline", json::array()))
    c.baseline.insert({b.at("node").get<std::string>(), b.at("hazard").get<std::string>()});
  for (const auto& e : j.value("dictionary", json::array()))
    c.dictionary.push_back({e.at("value").get<double>(), e.value("why", "")});
  return c;
}

}  // namespace

Result<FuzzConfig> parse_config(const std::string& text, const std::string& where) {
  try {
    FuzzConfig c = from_json(json::parse(text));
    for (const auto& s : c.layout.slots)
      if (!(s.lo <= s.hi)) return Status::Error(where + ": slot '" + s.name + "' has an empty range");
    return c;
  } catch (const json::exception& e) {
    return Status::Error(where + ": not a fuzz config: " + e.what());
  }
}

Result<FuzzConfig> read_config(const std::string& dir) {
  std::string path = dir + "/" + kConfigFile;
  std::ifstream in(path);
  if (!in) return Status::Error(path + ": cannot read (write the folder with `nanguard fuzz-config`)");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path);
}

std::string failure_hazard(const FuzzConfig& c, const std::string& node, bool has_nan) {
  const KnownFinding* any = nullptr;
  for (const auto& f : c.findings) {
    if (f.node != node) continue;
    if (f.kind == "forward") return f.hazard;
    if (!any) any = &f;
  }
  if (any) return any->hazard;
  return has_nan ? "nan" : "inf";
}

Result<std::set<FailureKey>> parse_baseline(const std::string& text, const std::string& where) {
  try {
    json j = json::parse(text);
    const json& list = j.is_object() ? j.at("crashes") : j;
    std::set<FailureKey> out;
    for (const auto& e : list) out.insert({e.at("node").get<std::string>(), e.at("hazard").get<std::string>()});
    return out;
  } catch (const json::exception& e) {
    return Status::Error(where + ": not a baseline (a list of {node, hazard}, or a fuzz summary.json): " + e.what());
  }
}

}  // namespace nanguard::fuzz
