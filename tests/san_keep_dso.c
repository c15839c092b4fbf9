// tests/san_keep_dso.c — linked into every program of the sanitizer build (build-asan/,
// `make asan` and the asan pass of `make test`) and nowhere else: a dlclose that leaves
// the library mapped until the process exits.
//
// Why: Open MPI 4.1 and PMIx load their components with dlopen and dlclose them in
// MPI_Finalize, before LeakSanitizer runs at exit. What a component keeps for the life of
// the process then has frames in "<unknown module>", which no library name in
// tests/lsan.supp matches (only a libmpi frame further up a whole stack does); what it
// still points to from its own globals is no longer scanned and looks leaked; and for
// every such frame LSan re-reads the process's module list (dl_iterate_phdr and
// /proc/self/maps): 2-3 s of every MPI process, most of the time of the asan pass. Open
// MPI 5 has mca_base_component_disable_dlclose for this; 4.1.4 (Debian 12) has not.
// rlhf-c never calls dlopen or dlclose itself; the libraries run as before, their code
// just stays mapped.
#include <dlfcn.h>

int dlclose(void *handle) {
    (void)handle;
    return 0;
}
