// Compatibility for branches written before the move (mamba2); the lead removes it: include reference.hpp.
#pragma once
#include "reference.hpp"
