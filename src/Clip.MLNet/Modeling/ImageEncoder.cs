using static TorchSharp.torch;
namespace Clip.MLNet.Modeling;

/// <summary>An image tower: pixels <c>[N, 3, S, S]</c> in, features <c>[N, embed_dim]</c> out.</summary>
internal abstract class ImageEncoder : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the tower; <paramref name="name"/> is the module name.</summary>
    protected ImageEncoder(string name) : base(name) { }

    /// <summary>The side length, in pixels, of the square input this tower was built for.</summary>
    public abstract int InputResolution { get; }
}
