// `nanguard ops`: the ONNX ops this build supports, with which facets each has (the
// LibTorch lowering, abstract semantics for the analyzer, hazard conditions).
#include <iostream>
#include <memory>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "harness/commands.h"
#include "ops/op_registry.h"

namespace nanguard {
namespace {

int run(const std::string& format) {
  nlohmann::json ops = nlohmann::json::array();
  int abstract = 0, hazards = 0;
  std::string text = fmt::format("{:<32} {:<9} {:<9} {}\n", "op", "execute", "analyze", "hazards");
  for (const std::string& name : OpRegistry::instance().op_types()) {
    const OpDef* d = OpRegistry::instance().find(name);
    if (!d) continue;
    bool has_abstract = d->interval || d->monotone != Monotone::kNone;
    abstract += has_abstract;
    hazards += d->hazards != nullptr;
    ops.push_back({{"op", name}, {"execute", true}, {"analyze", has_abstract}, {"hazards", d->hazards != nullptr}});
    text += fmt::format("{:<32} {:<9} {:<9} {}\n", name, "yes", has_abstract ? "yes" : "no", d->hazards ? "yes" : "-");
  }
  text += fmt::format("{} ops: {} executable, {} with abstract semantics, {} with hazard conditions\n", ops.size(),
                      ops.size(), abstract, hazards);
  std::cout << (format == "json" ? nlohmann::json{{"ops", ops}}.dump(2) + "\n" : text);
  return 0;
}

}  // namespace

CommandFn add_ops_command(CLI::App& app) {
  auto format = std::make_shared<std::string>("text");
  CLI::App* cmd = app.add_subcommand("ops", "list the supported ONNX ops and their facets");
  cmd->add_option("--format", *format, "text or json")->check(CLI::IsMember({"text", "json"}));
  return [cmd, format]() -> int { return cmd->parsed() ? run(*format) : -1; };
}

}  // namespace nanguard
