// The linear-region step of the system search. At the current point, with the
// ReLU/max/clip pattern held, the path from the variables to the target element is
// affine: s(z0 + d) = s0 + g . d. Z3's optimiser finds, in exact rational arithmetic,
// the smallest move (L1, each coordinate measured in its own box width) that meets
// the goal within the box. The caller re-runs the model and repeats if the pattern
// changed.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace nanguard {

struct LinearCoordinate {
  double gradient = 0;           // ds/dz_j at the current point
  double down = 0, up = 0;       // how far z_j may move: d_j in [-down, up]
  double width = 1;              // the box width, the unit the move is measured in
};

struct LinearGoal {
  double s0 = 0;         // s at the current point
  bool at_least = true;  // s >= bound, else s <= bound
  double bound = 0;
};

// The move d per coordinate, or nullopt when no move within the box meets the goal
// (under the linear model) or Z3 gives up.
std::optional<std::vector<double>> solve_linear_step(const std::vector<LinearCoordinate>& coords,
                                                     const LinearGoal& goal);

// With `equal`, the goal becomes s == bound (a divisor that must be exactly 0).
std::optional<std::vector<double>> solve_linear_equal(const std::vector<LinearCoordinate>& coords,
                                                      double s0, double bound);

}  // namespace nanguard
