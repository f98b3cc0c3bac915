using System.Text;

namespace Clip.MLNet.Text;

// Why hand-written: Microsoft.ML.Tokenizers encodes with BPE merges but has no way to learn them.
// Models trained from scratch need a vocabulary that fits their captions and needs no download;
// this learns merges from the captions themselves, in the byte-level, </w>-suffixed form CLIP's
// tokenizer (and its serialization) already use, so everything downstream is unchanged.

/// <summary>Learns byte-level BPE merges from texts (the classic algorithm: repeatedly merge the most frequent adjacent pair).</summary>
internal static class ClipBpeTrainer
{
    private sealed class Word(string[] symbols, int count)
    {
        public string[] Symbols = symbols;
        public readonly int Count = count;
    }

    /// <summary>Merges ("left right") in rank order, learned from the cleaned, pre-tokenized words of <paramref name="texts"/>.</summary>
    /// <param name="texts">The training corpus (captions).</param>
    /// <param name="maxMerges">At most this many merges; learning also stops when no pair occurs more than <paramref name="minPairCount"/> - 1 times.</param>
    /// <param name="minPairCount">Pairs seen fewer times are not merged.</param>
    public static List<string> LearnMerges(IEnumerable<string> texts, int maxMerges, int minPairCount = 1)
    {
        var symbolOf = ClipBpeVocabulary.ByteSymbols.ToDictionary(e => e.Byte, e => e.Symbol.ToString());
        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var text in texts)
        {
            var clean = ClipTextCleaner.Clean(text ?? "");
            foreach (var (offset, length) in Clip.MLNet.Text.ClipPreTokenizer.Split(clean))
            {
                var w = clean.Substring(offset, length);
                wordCounts[w] = wordCounts.GetValueOrDefault(w) + 1;
            }
        }
        var words = new List<Word>(wordCounts.Count);
        foreach (var (w, count) in wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var bytes = Encoding.UTF8.GetBytes(w);
            var symbols = bytes.Select(b => symbolOf[b]).ToArray();
            symbols[^1] += ClipBpeVocabulary.EndOfWordSuffix;
            words.Add(new Word(symbols, count));
        }

        // Pair counts and, per pair, the words holding it: a merge only revisits those words.
        var pairCounts = new Dictionary<(string, string), long>();
        var pairWords = new Dictionary<(string, string), HashSet<int>>();
        void AddPairs(int wi, int sign)
        {
            var s = words[wi].Symbols;
            for (int i = 0; i + 1 < s.Length; i++)
            {
                var p = (s[i], s[i + 1]);
                pairCounts[p] = pairCounts.GetValueOrDefault(p) + sign * words[wi].Count;
                if (sign > 0)
                {
                    if (!pairWords.TryGetValue(p, out var set)) pairWords[p] = set = new HashSet<int>();
                    set.Add(wi);
                }
            }
        }
        for (int i = 0; i < words.Count; i++) AddPairs(i, +1);

        var tokens = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (_, symbol) in ClipBpeVocabulary.ByteSymbols)
        {
            tokens.Add(symbol.ToString());
            tokens.Add(symbol + ClipBpeVocabulary.EndOfWordSuffix);
        }
        var merges = new List<string>();
        while (merges.Count < maxMerges)
        {
            // The most frequent pair; ties go to the ordinal-smallest so training is deterministic. A pair whose
            // result already exists as a token (reachable by another split) is skipped: ids must stay unique.
            (string, string)? best = null;
            long bestCount = minPairCount - 1;
            foreach (var (p, c) in pairCounts)
            {
                if (c < minPairCount || c < bestCount) continue;
                if (tokens.Contains(p.Item1 + p.Item2)) continue;
                if (c > bestCount || best is null || Compare(p, best.Value) < 0)
                {
                    best = p;
                    bestCount = c;
                }
            }
            if (best is null) break;
            var (left, right) = best.Value;
            var merged = left + right;
            merges.Add(left + " " + right);
            tokens.Add(merged);
            foreach (var wi in pairWords[best.Value].ToArray())
            {
                var s = words[wi].Symbols;
                bool has = false;
                for (int i = 0; i + 1 < s.Length; i++) if (s[i] == left && s[i + 1] == right) { has = true; break; }
                if (!has) continue;
                AddPairs(wi, -1);
                var next = new List<string>(s.Length);
                for (int i = 0; i < s.Length; i++)
                {
                    if (i + 1 < s.Length && s[i] == left && s[i + 1] == right) { next.Add(merged); i++; }
                    else next.Add(s[i]);
                }
                words[wi].Symbols = next.ToArray();
                AddPairs(wi, +1);
            }
            pairCounts.Remove(best.Value);
        }
        return merges;
    }

    private static int Compare((string, string) a, (string, string) b)
    {
        int c = string.CompareOrdinal(a.Item1, b.Item1);
        return c != 0 ? c : string.CompareOrdinal(a.Item2, b.Item2);
    }
}
