namespace Clip.MLNet.Tests.Training;

public class BpeTrainingTests
{
    [Fact]
    public void TrainingWordsBecomeSingleTokensAndUnseenWordsStillEncode()
    {
        var corpus = new[] { "a small red circle", "a large blue square", "a small green triangle", "a large red cross" };
        var tokenizer = ClipTokenizer.Train(corpus, contextLength: 10);
        foreach (var word in new[] { "small", "large", "red", "blue", "green", "circle", "square", "triangle", "cross", "a" })
            Assert.Single(tokenizer.EncodeBpe(word));
        Assert.True(tokenizer.EncodeBpe("zebra").Count > 1);            // pieces, down to bytes
        Assert.Equal("a red zebra ", tokenizer.Decode(tokenizer.EncodeBpe("a red zebra")));
        Assert.Equal(tokenizer.VocabularySize - 1, tokenizer.EndOfText);   // the end token has the largest id (EOT pooling)
        var restored = ClipTokenizer.FromMetadata(tokenizer.ToMetadata());
        Assert.Equal(tokenizer.Encode("a large green circle"), restored.Encode("a large green circle"));
    }

    [Fact]
    public void MergeCountIsBounded()
    {
        var tokenizer = ClipTokenizer.Train(new[] { "abcdefgh ijklmnop" }, maxMerges: 3);
        Assert.Equal(512 + 3 + 2, tokenizer.VocabularySize);
    }
}
