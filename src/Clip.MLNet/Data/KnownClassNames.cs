namespace Clip.MLNet.Data;

/// <summary>
/// The class names of benchmark datasets whose files store labels as numbers only, in label order.
/// CIFAR's lists are the names its own metadata files hold (with underscores, e.g. <c>aquarium_fish</c>);
/// readers prefer the metadata files when they are present.
/// </summary>
public static class KnownClassNames
{
    /// <summary>MNIST: the digits <c>0</c> to <c>9</c> (the names CLIP's prompts use).</summary>
    public static IReadOnlyList<string> Mnist { get; } = Array.AsReadOnly(Enumerable.Range(0, 10).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray());

    /// <summary>Fashion-MNIST's ten classes, as its authors name them.</summary>
    public static IReadOnlyList<string> FashionMnist { get; } = Array.AsReadOnly(new[]
    {
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    });

    /// <summary>CIFAR-10's classes (<c>batches.meta.txt</c>).</summary>
    public static IReadOnlyList<string> Cifar10 { get; } = Array.AsReadOnly(new[]
    {
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    });

    /// <summary>CIFAR-100's 100 fine classes (<c>fine_label_names.txt</c>).</summary>
    public static IReadOnlyList<string> Cifar100Fine { get; } = Array.AsReadOnly(new[]
    {
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
        "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
        "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
        "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
        "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
        "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
        "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
        "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
        "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
        "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
    });

    /// <summary>CIFAR-100's 20 coarse classes, its superclasses (<c>coarse_label_names.txt</c>).</summary>
    public static IReadOnlyList<string> Cifar100Coarse { get; } = Array.AsReadOnly(new[]
    {
        "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
        "household_electrical_devices", "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things",
        "large_natural_outdoor_scenes", "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
        "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
    });

    /// <summary>
    /// A class name as words for a prompt: underscores become spaces (<c>aquarium_fish</c> → <c>aquarium fish</c>),
    /// since CLIP was trained on captions, not identifiers.
    /// </summary>
    public static string ToPromptName(string className) => className.Replace('_', ' ');

    /// <summary>Reads class names from a text file: one per line, surrounding spaces and blank lines dropped.</summary>
    /// <exception cref="InvalidDataException">The file holds no names.</exception>
    public static IReadOnlyList<string> ReadFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such class-names file.", path);
        var names = TextLines.ReadFile(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        if (names.Length == 0) throw new InvalidDataException($"{path}: no class names (one per line expected).");
        return names;
    }
}
