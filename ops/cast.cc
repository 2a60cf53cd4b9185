// Placeholder: the ops of this family are being written.
#include "ops/op_registry.h"
