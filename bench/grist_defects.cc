#include "bench/grist_defects.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace nanguard::bench {

namespace fs = std::filesystem;

std::vector<Defect> grist_defects() {
  std::vector<Defect> out;
  if (!fs::is_directory("corpora/grist")) return out;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator("corpora/grist"))
    if (fs::exists(e.path() / "case.json") && fs::exists(e.path() / "model.onnx")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) {
    return std::stoi(a.filename().string()) < std::stoi(b.filename().string());
  });
  for (const auto& dir : dirs) {
    std::ifstream in(dir / "case.json");
    nlohmann::json c = nlohmann::json::parse(in);
    for (const auto& d : c["defects"])
      out.push_back({d["id"].get<std::string>(), d["node"].get<std::string>(), (dir / "model.onnx").string(), c});
  }
  return out;
}

AnalyzeOptions analyze_options(const Defect& d) {
  AnalyzeOptions o;
  for (const auto& [name, r] : d.c["inputs"].items()) o.ranges[name] = Range{r[0].get<double>(), r[1].get<double>()};
  const auto& w = d.c["weights"];
  if (w.value("mode", "fixed") == "free") {
    o.weights = WeightMode::kFree;
    if (w.contains("range")) o.weight_range = Range{w["range"][0].get<double>(), w["range"][1].get<double>()};
  }
  return o;
}

LoadOptions load_options(const Defect& d) {
  LoadOptions lo;
  for (const auto& [name, n] : d.c.value("dims", nlohmann::json::object()).items()) lo.dims[name] = n.get<int64_t>();
  return lo;
}

}  // namespace nanguard::bench
