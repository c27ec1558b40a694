namespace KernelDsl;

/// <summary>NCCL's <c>ncclResult_t</c>.</summary>
public enum NcclResult
{
    Success = 0,
    UnhandledCudaError = 1,
    SystemError = 2,
    InternalError = 3,
    InvalidArgument = 4,
    InvalidUsage = 5,
    /// <summary>Another rank failed or the network between ranks did.</summary>
    RemoteError = 6,
    /// <summary>A nonblocking communicator's call has not finished yet.</summary>
    InProgress = 7,
    /// <summary>NCCL's own timeout (2.27 and later); this runtime's timeouts report it too.</summary>
    Timeout = 8,
}
