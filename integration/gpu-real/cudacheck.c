/* A CUDA driver-API smoke test for a container: finds libcuda.so.1 through the container's ld
 * cache (which gpurun's GPU hook updates), lists the devices, and round-trips 64 MiB through
 * device memory. Needs no CUDA headers: the few entry points are declared here. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef unsigned long long CUdeviceptr;

#define LOAD(name) \
	if (!(name = dlsym(lib, #name))) { fprintf(stderr, "dlsym %s: %s\n", #name, dlerror()); return 2; }
#define CHECK(call) \
	if ((rc = (call)) != 0) { fprintf(stderr, "%s failed: %d\n", #call, rc); return 3; }

int main(void)
{
	void *lib = dlopen("libcuda.so.1", RTLD_NOW);
	if (!lib) { fprintf(stderr, "dlopen libcuda.so.1: %s\n", dlerror()); return 1; }
	CUresult (*cuInit)(unsigned), (*cuDriverGetVersion)(int *), (*cuDeviceGetCount)(int *),
		(*cuDeviceGet)(CUdevice *, int), (*cuDeviceGetName)(char *, int, CUdevice),
		(*cuDeviceTotalMem_v2)(size_t *, CUdevice), (*cuCtxCreate_v2)(CUcontext *, unsigned, CUdevice),
		(*cuMemAlloc_v2)(CUdeviceptr *, size_t), (*cuMemcpyHtoD_v2)(CUdeviceptr, const void *, size_t),
		(*cuMemcpyDtoH_v2)(void *, CUdeviceptr, size_t), (*cuMemFree_v2)(CUdeviceptr),
		(*cuCtxDestroy_v2)(CUcontext);
	LOAD(cuInit) LOAD(cuDriverGetVersion) LOAD(cuDeviceGetCount) LOAD(cuDeviceGet)
	LOAD(cuDeviceGetName) LOAD(cuDeviceTotalMem_v2) LOAD(cuCtxCreate_v2) LOAD(cuMemAlloc_v2)
	LOAD(cuMemcpyHtoD_v2) LOAD(cuMemcpyDtoH_v2) LOAD(cuMemFree_v2) LOAD(cuCtxDestroy_v2)
	int rc, version, count;
	CHECK(cuInit(0));
	CHECK(cuDriverGetVersion(&version));
	CHECK(cuDeviceGetCount(&count));
	printf("CUDA driver API %d.%d, %d device(s)\n", version / 1000, version % 1000 / 10, count);
	for (int i = 0; i < count; i++) {
		CUdevice dev; char name[256]; size_t mem; CUcontext ctx; CUdeviceptr d;
		size_t n = 64 << 20;
		CHECK(cuDeviceGet(&dev, i));
		CHECK(cuDeviceGetName(name, sizeof name, dev));
		CHECK(cuDeviceTotalMem_v2(&mem, dev));
		CHECK(cuCtxCreate_v2(&ctx, 0, dev));
		unsigned char *a = malloc(n), *b = malloc(n);
		for (size_t k = 0; k < n; k++) a[k] = (unsigned char)(k * 131 + 7);
		CHECK(cuMemAlloc_v2(&d, n));
		CHECK(cuMemcpyHtoD_v2(d, a, n));
		CHECK(cuMemcpyDtoH_v2(b, d, n));
		CHECK(cuMemFree_v2(d));
		CHECK(cuCtxDestroy_v2(ctx));
		printf("device %d: %s, %zu MiB, 64 MiB round trip %s\n", i, name, mem >> 20,
		       memcmp(a, b, n) ? "MISMATCH" : "ok");
	}
	return 0;
}
