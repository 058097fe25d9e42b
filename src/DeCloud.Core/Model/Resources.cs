namespace DeCloud.Core.Model;

/// <summary>
/// A resource vector: compute points, memory, storage and GPUs. Used both for what a VM asks for
/// and for what a node has.
/// </summary>
/// <param name="ComputePoints">CPU in compute points (a node's benchmark normalized by <see cref="ComputePointNormalizer"/>).</param>
/// <param name="MemoryMiB">Memory in MiB.</param>
/// <param name="StorageGiB">Storage in GiB.</param>
/// <param name="Gpus">Number of GPUs.</param>
/// <param name="GpuModel">GPU model (e.g. <c>nvidia-a100</c>), or null for any or none.</param>
public readonly record struct Resources(int ComputePoints, long MemoryMiB, long StorageGiB, int Gpus = 0, string? GpuModel = null)
{
    /// <summary>Upper bounds that reject absurd values (1 M points, 64 TiB memory, 10 PiB storage, 64 GPUs).</summary>
    public const int MaxComputePoints = 1_000_000;

    /// <summary>Upper bound of memory in MiB (64 TiB).</summary>
    public const long MaxMemoryMiB = 64L * 1024 * 1024;

    /// <summary>Upper bound of storage in GiB (10 PiB).</summary>
    public const long MaxStorageGiB = 10L * 1024 * 1024;

    /// <summary>Upper bound of GPUs per VM or node.</summary>
    public const int MaxGpus = 64;

    /// <summary>
    /// Checks a VM request: at least one point, memory and storage, no negatives, nothing absurd,
    /// a GPU model only with GPUs. Throws <see cref="DeCloudValidationException"/> naming the field.
    /// </summary>
    public void ValidateRequest(string prefix = "resources")
    {
        Validate.Range(ComputePoints, 1, MaxComputePoints, prefix + ".computePoints");
        Validate.Range(MemoryMiB, 1, MaxMemoryMiB, prefix + ".memoryMiB");
        Validate.Range(StorageGiB, 1, MaxStorageGiB, prefix + ".storageGiB");
        ValidateGpus(prefix);
    }

    /// <summary>Checks a node's capacity: zero is allowed, negatives and absurd values are not.</summary>
    public void ValidateCapacity(string prefix = "capacity")
    {
        Validate.Range(ComputePoints, 0, MaxComputePoints, prefix + ".computePoints");
        Validate.Range(MemoryMiB, 0, MaxMemoryMiB, prefix + ".memoryMiB");
        Validate.Range(StorageGiB, 0, MaxStorageGiB, prefix + ".storageGiB");
        ValidateGpus(prefix);
    }

    private void ValidateGpus(string prefix)
    {
        Validate.Range(Gpus, 0, MaxGpus, prefix + ".gpus");
        if (GpuModel is not null)
        {
            if (GpuModel.Length is 0 or > 64 || !GpuModel.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ' '))
            {
                throw Validate.Fail(prefix + ".gpuModel", $"'{GpuModel}' is not a GPU model name (1-64 letters, digits, '-', '_', '.', ' ').");
            }
        }
    }
}

/// <summary>
/// Turns a node's CPU benchmark score into compute points: points = floor(score / baseline), where the
/// baseline is the score of one reference core (one point).
/// </summary>
public sealed class ComputePointNormalizer
{
    /// <summary>Creates a normalizer for <paramref name="baselineScorePerPoint"/> (must be positive).</summary>
    public ComputePointNormalizer(double baselineScorePerPoint)
    {
        if (!(baselineScorePerPoint > 0) || double.IsInfinity(baselineScorePerPoint))
        {
            throw Validate.Fail("baselineScorePerPoint", $"{baselineScorePerPoint} must be a positive finite number.");
        }

        BaselineScorePerPoint = baselineScorePerPoint;
    }

    /// <summary>The default: 1,000 sysbench CPU events/s (one thread, --cpu-max-prime=10000) per point.</summary>
    public static ComputePointNormalizer Default { get; } = new(1000);

    /// <summary>The score of one point.</summary>
    public double BaselineScorePerPoint { get; }

    /// <summary>The compute points for <paramref name="score"/> (a total over all cores).</summary>
    public int Normalize(double score)
    {
        if (!(score >= 0) || double.IsInfinity(score))
        {
            throw Validate.Fail("benchmarkScore", $"{score} must be a non-negative finite number.");
        }

        return (int)Math.Min(Resources.MaxComputePoints, Math.Floor(score / BaselineScorePerPoint));
    }
}
