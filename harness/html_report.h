// `nanguard check`'s report.html: one self-contained page (inline CSS and SVG, no
// network) with, per finding, a picture of the faulty path with the analysis' ranges,
// the witness, the fixed subgraph and the validation figures.
#pragma once

#include <string>

#include "harness/check.h"

namespace nanguard {

std::string check_html(const CheckReport& r, const Graph& graph);

}  // namespace nanguard
