using BenchmarkDotNet.Running;
using DeCloud.Benchmarks;

// Two entry points:
//   dotnet run -c Release --project benchmarks/DeCloud.Benchmarks -- quick <area>
//       a short measurement (under 60 s) of one area against its baseline, printing RESULT lines;
//   dotnet run -c Release --project benchmarks/DeCloud.Benchmarks -- [BenchmarkDotNet arguments]
//       the full BenchmarkDotNet suites (for example --filter '*Scheduler*').
if (args.Length > 0 && args[0] == "quick")
{
    return await QuickRunner.RunAsync(args.Skip(1).ToArray());
}

BenchmarkSwitcher.FromAssembly(typeof(QuickRunner).Assembly).Run(args);
return 0;
