namespace Clip.MLNet.Tests.Performance;

/// <summary>FLOP counts from a configuration: the published figures of OpenAI's sizes, and a small ResNet counted by hand.</summary>
public class ClipFlopsTests
{
    private static ClipConfig VitB32 => ClipConfig.VisionTransformerConfig(512, 224, 32, 768, 12, 512, 12);
    private static ClipConfig VitB16 => ClipConfig.VisionTransformerConfig(512, 224, 16, 768, 12, 512, 12);

    [Fact]
    public void VitB32ImageTowerIs8Point82Gflop()
    {
        // patch conv 49·3·32²·768 + 12 blocks × (50·4·768² + 2·50²·768 + 50·2·768·3072) + proj 768·512
        long expected = 49L * 3 * 1024 * 768 + 12L * (50L * 4 * 768 * 768 + 2L * 50 * 50 * 768 + 50L * 2 * 768 * 3072) + 768L * 512;
        Assert.Equal(expected, ClipFlops.ImageMacs(VitB32));
        Assert.Equal(8.818, ClipFlops.ImageGflop(VitB32), 3);
    }

    [Fact]
    public void VitB16CountsItsLongerSequence()
    {
        // 196 patches + the class token: patch conv 196·3·16²·768, 12 blocks at 197 positions, proj.
        long t = 197;
        long expected = 196L * 3 * 256 * 768 + 12 * (t * 4 * 768 * 768 + 2 * t * t * 768 + t * 2 * 768 * 3072) + 768L * 512;
        Assert.Equal(expected, ClipFlops.ImageMacs(VitB16));
        Assert.Equal(35.13, ClipFlops.ImageGflop(VitB16), 2);
        Assert.Equal(5.96, ClipFlops.TextGflop(VitB32, 77), 2);
    }

    [Fact]
    public void TextWorkFollowsThePositionsRun()
    {
        // 12 blocks × (L·4·512² + 2·L²·512 + L·2·512·2048) + projection 512·512
        static long Expected(long l) => 12 * (l * 4 * 512 * 512 + 2 * l * l * 512 + l * 2 * 512 * 2048) + 512L * 512;
        Assert.Equal(Expected(10), ClipFlops.TextMacs(VitB32, 10));
        Assert.Equal(Expected(77), ClipFlops.TextMacs(VitB32, 77));
        Assert.True(ClipFlops.TextMacs(VitB32, 77) > 7.5 * ClipFlops.TextMacs(VitB32, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClipFlops.TextMacs(VitB32, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClipFlops.TextMacs(VitB32, 78));
    }

    [Fact]
    public void ResNetCountFollowsTheBottleneckLayout()
    {
        // width 8, stages [1,1,1,1], 64 px, embed 16: every convolution written out.
        var config = ClipConfig.ResNetConfig(16, 64, new[] { 1, 1, 1, 1 }, 8, 64, 1);
        static long Conv(long cin, long cout, long k, long side) => cin * cout * k * k * side * side;
        long stem = Conv(3, 4, 3, 32) + Conv(4, 4, 3, 32) + Conv(4, 8, 3, 32);                         // then avgpool to 16
        long layer1 = Conv(8, 8, 1, 16) + Conv(8, 8, 3, 16) + Conv(8, 32, 1, 16) + Conv(8, 32, 1, 16);   // downsample: 8 != 32
        long layer2 = Conv(32, 16, 1, 16) + Conv(16, 16, 3, 16) + Conv(16, 64, 1, 8) + Conv(32, 64, 1, 8);
        long layer3 = Conv(64, 32, 1, 8) + Conv(32, 32, 3, 8) + Conv(32, 128, 1, 4) + Conv(64, 128, 1, 4);
        long layer4 = Conv(128, 64, 1, 4) + Conv(64, 64, 3, 4) + Conv(64, 256, 1, 2) + Conv(128, 256, 1, 2);
        long tokens = 2 * 2 + 1, e = 256;
        long pool = e * e + 2 * tokens * e * e + 2 * tokens * e + e * 16;
        Assert.Equal(stem + layer1 + layer2 + layer3 + layer4 + pool, ClipFlops.ImageMacs(config));
    }

    [Fact]
    public void Rn50IsCountedLikeItsPublishedSize()
    {
        // torchvision's ResNet-50 is 4.1 GMACs; CLIP's RN50 adds a three-convolution stem and attention pooling.
        var rn50 = ClipConfig.ResNetConfig(1024, 224, new[] { 3, 4, 6, 3 }, 64, 512, 12);
        Assert.InRange(ClipFlops.ImageMacs(rn50) / 1e9, 5.7, 5.9);
    }
}
