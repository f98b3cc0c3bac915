using BenchmarkDotNet.Running;

namespace Clip.MLNet.Benchmarks;

internal static class Program
{
    public static int Main(string[] args)
    {
        // `onnx ...`: ONNX Runtime's throughput on the ONNX export (not a BenchmarkDotNet run; see OnnxRuntimeThroughput).
        if (args.Length > 0 && args[0] == "onnx") return OnnxRuntimeThroughput.Run(args[1..]);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
