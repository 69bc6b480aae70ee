/*
** Compute devices: where a forward pass runs.
**
** seqlab has one set of kernels with two backends behind it (DESIGN.md,
** "Layers of the house"): the CPU implementation in kernels/ and the CUDA
** implementation of the same functions in kernels/cuda/, built with
** `make CUDA=1`. A forward pass names its device in sl_fwd.device (models/
** layer.h); SL_DEVICE_CPU (0) is the default, so code that never sets it runs
** on the CPU as before.
**
** Whether CUDA can be used is decided in three steps, each with its own
** message, so a user learns the actual reason:
**   built    the library was compiled with CUDA=1 (SL_CUDA defined);
**   family   every layer of the model has a CUDA path (SL_LAYER_CUDA; checked
**            by the model, not here);
**   device   at run time the CUDA runtime reports a usable device.
** This file is compiled in every build: without SL_CUDA it answers "not
** built"; with it, it asks kernels/cuda/ (sl_cuda_check).
*/
#ifndef SL_DEVICE_H
#define SL_DEVICE_H

#include "err.h"

enum sl_device {
    SL_DEVICE_CPU = 0,
    SL_DEVICE_CUDA = 1
};

/* "cpu", "cuda" (or "?" for an unknown value). */
const char *sl_device_name(int device);

/* Parse "cpu" / "cuda" into *device; SL_OK or SL_EINVAL naming the choices. */
int sl_device_parse(const char *s, int *device, sl_err *err);

/* 1 when this build has the backend (always for the CPU). */
int sl_device_built(int device);

/* SL_OK when the device can run work now. Otherwise SL_EUNSUP with
** "seqlab was built without CUDA (make CUDA=1)" or "no CUDA device found
** (...)" (the runtime's reason in parentheses). Cheap after the first call:
** the CUDA answer is cached. */
int sl_device_check(int device, sl_err *err);

#endif
