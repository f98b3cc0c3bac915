using System.Globalization;
using System.Net;
using System.Text;
using Clip.MLNet.Search;

namespace Clip.MLNet.Serve;

/// <summary>
/// The search page: a search box that searches as you type (and keeps the query in the address, <c>?q=</c>), a grid of
/// thumbnails with scores and captions, and a drop zone that searches by example. The results of <c>?q=</c> are in the
/// page as served, so a linked search shows its images without script.
/// </summary>
internal static class SearchPage
{
    public static string Render(string query, IReadOnlyList<ClipSearchResult> results, string? error, long items, int k)
    {
        var cards = new StringBuilder();
        foreach (var r in results) cards.Append(Card(r));
        var status = error is not null ? Encode(error)
            : query.Length == 0 ? $"{items.ToString("N0", CultureInfo.InvariantCulture)} images. Type to search, or drop an image here."
            : $"{results.Count} results for “{Encode(query)}”";
        return Template
            .Replace("{{QUERY}}", Encode(query))
            .Replace("{{STATUS}}", status)
            .Replace("{{K}}", k.ToString(CultureInfo.InvariantCulture))
            .Replace("{{CARDS}}", cards.ToString());
    }

    private static string Card(ClipSearchResult r)
    {
        var label = r.Caption ?? r.Path;
        return string.Create(CultureInfo.InvariantCulture,
            $"<figure class=\"card\"><img class=\"result\" src=\"{SearchJson.ThumbnailUrl(r.Id)}\" alt=\"{Encode(r.Path)}\" title=\"{Encode(r.Path)}\" onload=\"this.dataset.loaded=this.naturalWidth\"><figcaption><b>{r.Score:F3}</b> {Encode(label)}</figcaption></figure>");
    }

    private static string Encode(string s) => WebUtility.HtmlEncode(s);

    private const string Template = """
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clip search</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #222; }
  header { position: sticky; top: 0; background: #fff; padding: 14px 20px; box-shadow: 0 1px 4px rgba(0,0,0,.12); display: flex; gap: 12px; align-items: center; }
  header h1 { font-size: 18px; margin: 0; white-space: nowrap; }
  #q { flex: 1; font-size: 17px; padding: 8px 12px; border: 1px solid #bbb; border-radius: 6px; }
  #status { padding: 10px 20px; color: #555; font-size: 14px; }
  #grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 14px; padding: 0 20px 30px; }
  .card { margin: 0; background: #fff; border-radius: 6px; overflow: hidden; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
  .card img { display: block; width: 100%; aspect-ratio: 4 / 3; object-fit: cover; background: #ddd; }
  .card figcaption { padding: 6px 8px; font-size: 13px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  body.drag { outline: 4px dashed #3a7; outline-offset: -12px; }
  label.pick { font-size: 14px; color: #36a; cursor: pointer; white-space: nowrap; }
</style>
</head>
<body>
<header>
  <h1>clip search</h1>
  <input id="q" type="search" placeholder="Describe an image… (or drop one on the page)" value="{{QUERY}}" autofocus autocomplete="off">
  <label class="pick">search by image<input id="file" type="file" accept="image/*" hidden></label>
</header>
<div id="status">{{STATUS}}</div>
<main id="grid">{{CARDS}}</main>
<script>
const K = {{K}};
const input = document.getElementById('q'), grid = document.getElementById('grid'), status = document.getElementById('status');
let sequence = 0, timer = 0;
function render(results, label) {
  grid.textContent = '';
  for (const r of results) {
    const figure = document.createElement('figure'); figure.className = 'card';
    const img = document.createElement('img'); img.className = 'result'; img.alt = r.path; img.title = r.path;
    img.onload = () => { img.dataset.loaded = img.naturalWidth; };
    img.src = r.thumbnail;
    const caption = document.createElement('figcaption');
    const score = document.createElement('b'); score.textContent = r.score.toFixed(3);
    caption.append(score, ' ' + (r.caption ?? r.path));
    figure.append(img, caption); grid.append(figure);
  }
  status.textContent = results.length + ' results for ' + label;
}
async function answer(my, response, label) {
  let body;
  try { body = await response.json(); } catch { body = { error: response.statusText }; }
  if (my !== sequence) return;
  if (!response.ok) { status.textContent = body.error || ('error ' + response.status); return; }
  render(body, label);
}
async function searchText(q) {
  const my = ++sequence;
  history.replaceState(null, '', q ? '?q=' + encodeURIComponent(q).replace(/%20/g, '+') : location.pathname);
  if (!q) { grid.textContent = ''; status.textContent = 'Type to search, or drop an image here.'; return; }
  status.textContent = 'searching…';
  try { await answer(my, await fetch('/api/search?thumbs=true&k=' + K + '&text=' + encodeURIComponent(q)), '“' + q + '”'); }
  catch (e) { if (my === sequence) status.textContent = String(e); }
}
async function searchImage(file) {
  const my = ++sequence;
  status.textContent = 'searching by ' + file.name + '…';
  const form = new FormData(); form.append('image', file, file.name);
  try { await answer(my, await fetch('/api/search?thumbs=true&k=' + K, { method: 'POST', body: form }), 'the image ' + file.name); }
  catch (e) { if (my === sequence) status.textContent = String(e); }
}
input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => searchText(input.value.trim()), 180); });
document.getElementById('file').addEventListener('change', e => { if (e.target.files[0]) searchImage(e.target.files[0]); });
document.addEventListener('dragover', e => { e.preventDefault(); document.body.classList.add('drag'); });
document.addEventListener('dragleave', () => document.body.classList.remove('drag'));
document.addEventListener('drop', e => {
  e.preventDefault(); document.body.classList.remove('drag');
  const file = e.dataTransfer.files[0];
  if (file) searchImage(file);
});
</script>
</body>
</html>
""";
}
