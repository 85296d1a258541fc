#include "CShims.h"
int vf_shims_version(void) { return 1; }
