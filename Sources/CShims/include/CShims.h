// CShims: the thin C layer between vpnfast and the kernel. Every symbol is prefixed vf_.
#ifndef VPNFAST_CSHIMS_H
#define VPNFAST_CSHIMS_H
#include <stdint.h>
#include <stddef.h>
int vf_shims_version(void);
#endif
