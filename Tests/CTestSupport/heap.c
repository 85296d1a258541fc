// Heap introspection for memory-cost tests.
#include <malloc.h>

#include "CTestSupport.h"

unsigned long vf_test_heap_block_size(void *block) { return (unsigned long)malloc_usable_size(block); }
