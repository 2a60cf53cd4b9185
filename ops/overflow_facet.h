// The facet of an `overflow` that no single operand element decides (a sum inside the
// op, a window, an unnormalised coordinate): the fixer bounds every operand, and the
// unit target is an output that is not finite. The analyzer's generic overflow is one;
// ops that report their own inner overflow declare it with their reason.
#pragma once

#include <string>

#include "ops/hazard.h"

namespace nanguard {

HazardFacet bounded_overflow_facet(std::string why);

}  // namespace nanguard
