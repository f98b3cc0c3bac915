using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>
/// ModifiedResNet bottleneck: all convolutions stride 1, an average pool before the third
/// convolution when strided, and an average-pool-then-1x1-conv shortcut (keys <c>downsample.0/1</c>).
/// </summary>
internal sealed class Bottleneck : nn.Module<Tensor, Tensor>
{
    public const int Expansion = 4;

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly ReLU relu1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly ReLU relu2;
    private readonly nn.Module<Tensor, Tensor> avgpool;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly ReLU relu3;
    private readonly Sequential? downsample;

    public Bottleneck(long inplanes, long planes, long stride, Device? device = null) : base(nameof(Bottleneck))
    {
        conv1 = nn.Conv2d(inplanes, planes, 1, bias: false, device: device);
        bn1 = nn.BatchNorm2d(planes, device: device);
        relu1 = nn.ReLU(inplace: true);
        conv2 = nn.Conv2d(planes, planes, 3, padding: 1, bias: false, device: device);
        bn2 = nn.BatchNorm2d(planes, device: device);
        relu2 = nn.ReLU(inplace: true);
        avgpool = stride > 1 ? nn.AvgPool2d(stride) : nn.Identity();
        conv3 = nn.Conv2d(planes, planes * Expansion, 1, bias: false, device: device);
        bn3 = nn.BatchNorm2d(planes * Expansion, device: device);
        relu3 = nn.ReLU(inplace: true);
        if (stride > 1 || inplanes != planes * Expansion)
        {
            downsample = nn.Sequential(
                ("-1", nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(inplanes, planes * Expansion, 1, bias: false, device: device)),
                ("1", nn.BatchNorm2d(planes * Expansion, device: device)));
        }
        if (device is null || device.type != DeviceType.META)
            using (torch.no_grad()) bn3.weight!.zero_();   // OpenAI's init: each residual branch starts as zero
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = relu1.forward(bn1.forward(conv1.forward(x)));
        h = relu2.forward(bn2.forward(conv2.forward(h)));
        h = avgpool.forward(h);
        h = bn3.forward(conv3.forward(h));
        var identity = downsample is null ? x : downsample.forward(x);
        h = h.add_(identity);
        return scope.MoveToOuter(relu3.forward(h));
    }
}
