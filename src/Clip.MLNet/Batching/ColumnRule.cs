using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Clip.MLNet.Batching;

/// <summary>
/// What a CLIP stage (a transform, or training over a data view) accepts in an input column, and the one wording of
/// the errors when a column is missing or of another type, for both of ML.NET's schema forms.
/// </summary>
/// <param name="Taker">Who takes the column, for the "not found" message ("CLIP image transforms").</param>
/// <param name="Expected">The accepted types, in words.</param>
/// <param name="Accepts">Whether a column type is accepted.</param>
/// <param name="AcceptsShape">Whether a column of an estimator's schema shape is accepted.</param>
internal sealed record ColumnRule(string Taker, string Expected, Func<DataViewType, bool> Accepts, Func<SchemaShape.Column, bool> AcceptsShape)
{
    /// <summary>The image types every CLIP image stage reads.</summary>
    public const string ImageTypes = "an image (MLImage, from LoadImages), a text column of image file paths, or a vector of bytes holding an encoded image";

    /// <summary>An image column: ML.NET images, file paths (text) or encoded bytes.</summary>
    public static readonly ColumnRule Image = new("CLIP image transforms", ImageTypes,
        type => type is ImageDataViewType || type is TextDataViewType || (type is VectorDataViewType v && v.ItemType == NumberDataViewType.Byte),
        c => (c.Kind == SchemaShape.Column.VectorKind.Scalar && (c.ItemType is ImageDataViewType || c.ItemType is TextDataViewType) && !c.IsKey)
            || (c.Kind != SchemaShape.Column.VectorKind.Scalar && c.ItemType == NumberDataViewType.Byte));

    /// <summary>A text column.</summary>
    public static readonly ColumnRule Text = new("CLIP text transforms", "text (String)",
        type => type is TextDataViewType,
        c => c.Kind == SchemaShape.Column.VectorKind.Scalar && c.ItemType is TextDataViewType && !c.IsKey);

    /// <summary>The same rule for another taker (training, say).</summary>
    public ColumnRule For(string taker) => this with { Taker = taker };

    /// <summary>Throws, naming the column and the accepted types, unless <paramref name="schema"/> has an accepted <paramref name="column"/>.</summary>
    public void Check(DataViewSchema schema, string column, string parameterName = "inputSchema")
    {
        var col = schema.GetColumnOrNull(column) ?? throw NotFound(column, parameterName);
        if (!Accepts(col.Type)) throw Mismatch(column, col.Type.ToString() ?? col.Type.GetType().Name, parameterName);
    }

    /// <inheritdoc cref="Check(DataViewSchema, string, string)"/>
    public void Check(SchemaShape shape, string column, string parameterName = "inputSchema")
    {
        SchemaShape.Column? found = null;
        foreach (var c in shape)
            if (c.Name == column) found = c;
        if (found is not { } col) throw NotFound(column, parameterName);
        if (!AcceptsShape(col)) throw Mismatch(column, Describe(col), parameterName);
    }

    private ArgumentOutOfRangeException NotFound(string column, string parameterName) =>
        new(parameterName, $"Input column '{column}' not found; {Taker} take {Expected}.");

    private ArgumentOutOfRangeException Mismatch(string column, string actual, string parameterName) =>
        new(parameterName, $"Schema mismatch for input column '{column}': expected {Expected}, got {actual}.");

    /// <summary>A schema-shape column as ML.NET names types (<c>Vector&lt;Single&gt;</c>, <c>Key&lt;UInt32&gt;</c>).</summary>
    public static string Describe(SchemaShape.Column col) =>
        (col.IsKey ? "Key<" : "") + (col.Kind == SchemaShape.Column.VectorKind.Scalar ? col.ItemType.ToString() : $"Vector<{col.ItemType}>") + (col.IsKey ? ">" : "");
}

/// <summary>ML.NET's annotation kind names (public strings there, internal constants).</summary>
internal static class AnnotationKinds
{
    public const string SlotNames = "SlotNames";
    public const string KeyValues = "KeyValues";
    public const string ScoreColumnKind = "ScoreColumnKind";
    public const string ScoreValueKind = "ScoreValueKind";
}
