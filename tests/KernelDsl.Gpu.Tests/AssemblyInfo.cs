// Every test here runs on a CUDA device: without one, each class skips as one line (tests/Shared/Requirements.cs).
[assembly: KernelDsl.Testing.RequiresCudaDevice]
