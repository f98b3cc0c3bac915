namespace Clip.MLNet.Tests.Text;

/// <summary>Every case of ../shared/clip-reference/tokenizer_cases.json, from both vocabulary sources, gives the reference's ids exactly.</summary>
public class ReferenceCasesTests
{
    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        for (int i = 0; i < TokenizerFixtures.Cases.Count; i++)
        {
            data.Add("gz", i);
            data.Add("hf", i);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BpeIdsMatchTheReference(string source, int index)
    {
        var c = TokenizerFixtures.Cases[index];
        Assert.Equal(c.BpeIds, TokenizerFixtures.Get(source).EncodeBpe(c.Text));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ContextIdsMatchTheReference(string source, int index)
    {
        var c = TokenizerFixtures.Cases[index];
        var tokenizer = TokenizerFixtures.Get(source);
        Assert.Equal(c.Context77Truncated, tokenizer.Encode(c.Text));

        var row = new long[tokenizer.ContextLength];
        Array.Fill(row, -1);
        tokenizer.EncodeInto(c.Text, row);
        Assert.Equal(c.Context77Truncated.Select(i => (long)i), row);
    }

    [Fact]
    public void TheFixtureHasTheFortyCasesAndTheFtfyOnes()
    {
        // Guards the theory above against an empty or truncated fixture passing vacuously.
        Assert.Equal(40, TokenizerFixtures.Cases.Count);
        Assert.Equal(4, TokenizerFixtures.Cases.Count(c => c.FtfySensitive));
    }

    [Theory]
    [InlineData("gz")]
    [InlineData("hf")]
    public void SpecialTokensAndVocabularySizeAreClips(string source)
    {
        var tokenizer = TokenizerFixtures.Get(source);
        Assert.Equal(49406, tokenizer.StartOfText);
        Assert.Equal(49407, tokenizer.EndOfText);
        Assert.Equal(49408, tokenizer.VocabularySize);
        Assert.Equal(77, tokenizer.ContextLength);
    }

    [Fact]
    public void TheTwoSourcesHaveTheSameVocabulary()
    {
        var gz = TokenizerFixtures.OpenAi;
        var hf = TokenizerFixtures.HuggingFace;
        for (int id = 0; id < gz.VocabularySize; id++) Assert.Equal(gz.IdToToken(id), hf.IdToToken(id));
    }
}
