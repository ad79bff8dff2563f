//! Files an attacker or a broken tool could hand Twinhead, each with the
//! clear error it must get: never a panic, an abort, a hang or an allocation
//! the file's size does not justify. Property tests feed the readers arbitrary
//! bytes and mutations of valid files. (Hostile network peers are in
//! `data_parallel` and `remote`; numbers out of range in the modules of the
//! commands they belong to.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn_store::pytorch::lazy_data::LazyDataSource;
use burn_store::pytorch::pickle_reader::{read_pickle, read_pickle_with_data, Object};
use proptest::prelude::*;

use crate::common::twinhead;
use crate::common;

/// Pickle opcodes, by their names in Python's `pickletools`.
mod op {
    pub const PROTO_2: &[u8] = b"\x80\x02";
    pub const EMPTY_LIST: u8 = b']';
    pub const EMPTY_DICT: u8 = b'}';
    pub const MARK: u8 = b'(';
    pub const TUPLE: u8 = b't';
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const BINPUT: u8 = b'q';
    pub const BINGET: u8 = b'h';
    pub const BININT1: u8 = b'K';
    pub const BININT: u8 = b'J';
    pub const BINUNICODE: u8 = b'X';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const SETITEM: u8 = b's';
    pub const NEWFALSE: u8 = 0x89;
    pub const STOP: u8 = b'.';
}

fn unicode(text: &str) -> Vec<u8> {
    let mut bytes = vec![op::BINUNICODE];
    bytes.extend((text.len() as u32).to_le_bytes());
    bytes.extend(text.as_bytes());
    bytes
}

fn global(module: &str, name: &str) -> Vec<u8> {
    format!("c{module}\n{name}\n").into_bytes()
}

/// `((((…(1,)…),),),)`, nested `depth` deep.
fn deeply_nested(depth: usize) -> Vec<u8> {
    let mut bytes = [op::PROTO_2, &[op::BININT1, 1]].concat();
    bytes.extend(std::iter::repeat_n(op::TUPLE1, depth));
    bytes.push(op::STOP);
    bytes
}

/// A list memoised, then a pair of the memo entry twice stored over it,
/// `rounds` times: each round doubles what a copying reader builds.
fn doubling_references(rounds: usize) -> Vec<u8> {
    let mut bytes = [op::PROTO_2, &[op::EMPTY_LIST, op::BINPUT, 0]].concat();
    for _ in 0..rounds {
        bytes.extend([op::BINGET, 0, op::BINGET, 0, op::TUPLE2, op::BINPUT, 0]);
    }
    bytes.push(op::STOP);
    bytes
}

/// A string that claims 4 GiB and holds three bytes.
fn lying_string_length() -> Vec<u8> {
    [op::PROTO_2, &[op::BINUNICODE], &u32::MAX.to_le_bytes(), b"abc"].concat()
}

/// `{"weight": tensor}` whose shape needs `shape`'s product of floats from
/// storage "0".
fn state_dict(shape: &[i32]) -> Vec<u8> {
    let mut bytes = [op::PROTO_2, &[op::EMPTY_DICT]].concat();
    bytes.extend(unicode("weight"));
    bytes.extend(global("torch._utils", "_rebuild_tensor_v2"));
    bytes.push(op::MARK);
    // The storage: persistent id ('storage', FloatStorage, '0', 'cpu', 1).
    bytes.push(op::MARK);
    bytes.extend(unicode("storage"));
    bytes.extend(global("torch", "FloatStorage"));
    bytes.extend(unicode("0"));
    bytes.extend(unicode("cpu"));
    bytes.extend([op::BININT1, 1, op::TUPLE, op::BINPERSID]);
    bytes.extend([op::BININT1, 0, op::MARK]);
    for d in shape {
        bytes.push(op::BININT);
        bytes.extend(d.to_le_bytes());
    }
    bytes.extend([op::TUPLE, op::MARK, op::TUPLE, op::NEWFALSE]);
    bytes.extend(global("collections", "OrderedDict"));
    bytes.extend([op::MARK, op::TUPLE, op::REDUCE, op::TUPLE, op::REDUCE, op::SETITEM, op::STOP]);
    bytes
}

/// A `torch.save` archive holding `pickle` and, as storage "0", `storage`.
fn torch_archive(path: &Path, pickle: &[u8], storage: &[u8]) -> PathBuf {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(pickle).unwrap();
    zip.start_file("archive/data/0", options).unwrap();
    zip.write_all(storage).unwrap();
    zip.finish().unwrap();
    path.to_path_buf()
}

/// `model.pretrained` files that would overflow the stack, copy shared
/// references into all of memory, or claim gigabytes they do not hold: each
/// ends the run's start with exit 2, the file and the limit named.
#[test]
fn hostile_weights_files_are_refused_naming_the_file_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("deep.pt", deeply_nested(1_000_000), "nested more than 512 deep"),
        ("doubling.pt", doubling_references(64), "shared references copied over and over"),
        ("lying.pt", lying_string_length(), "unreadable pickle"),
    ];
    let synth = dir.path().join("synth");
    for (name, pickle, why) in cases {
        let file = torch_archive(&dir.path().join(name), &pickle, &[0; 4]);
        let mut args = vec!["train".to_string(), "--preset".into(), "quick".into(), "--out".into(), dir.path().join(format!("run-{name}")).display().to_string()];
        for set in common::data_overrides(&synth).into_iter().chain([format!("model.pretrained={}", file.display())]) {
            args.extend(["--set".to_string(), set]);
        }
        let out = twinhead(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(name) && stderr.contains(why), "{name}: {stderr}");
    }
}

/// The reader's limits, directly: the nesting the stack can take is read, one
/// level more is refused, and the doubling stops within its budget.
#[test]
fn the_pickle_reader_bounds_depth_and_copies() {
    assert!(read_pickle(&mut deeply_nested(511).as_slice()).is_ok());
    let error = read_pickle(&mut deeply_nested(512).as_slice()).unwrap_err().to_string();
    assert!(error.contains("nested more than 512 deep"), "{error}");
    // Twelve rounds (4096 copies) fit; sixty-four would be 2^64.
    assert!(read_pickle(&mut doubling_references(12).as_slice()).is_ok());
    let error = read_pickle(&mut doubling_references(64).as_slice()).unwrap_err().to_string();
    assert!(error.contains("MiB"), "{error}");
}

/// A tensor whose shape needs more than its storage holds is an error when
/// its data is read, not a zero-filled allocation of the claimed size.
#[test]
fn a_tensor_larger_than_its_storage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (shape, storage) in [(vec![2, 2], 16), (vec![1 << 30, 1 << 30, 1 << 30], 4), (vec![3], 8)] {
        let file = torch_archive(&dir.path().join("t.pt"), &state_dict(&shape), &vec![0; storage]);
        let source = Arc::new(LazyDataSource::from_zip(&file).unwrap());
        let pickle = {
            let mut zip = zip::ZipArchive::new(std::fs::File::open(&file).unwrap()).unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut zip.by_name("archive/data.pkl").unwrap(), &mut bytes).unwrap();
            bytes
        };
        let Object::Dict(dict) = read_pickle_with_data(&mut pickle.as_slice(), source).unwrap() else { panic!("no dict") };
        let Some(Object::TorchParam(tensor)) = dict.get("weight") else { panic!("no tensor: {dict:?}") };
        let elements = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d as usize));
        let fits = elements.is_some_and(|n| n * 4 <= storage);
        match tensor.to_data() {
            Ok(data) => assert!(fits && Some(data.num_elements()) == elements, "{shape:?}"),
            Err(e) => assert!(!fits && e.to_string().contains("runs past its storage"), "{shape:?}: {e}"),
        }
    }
}

/// The bytes of a real Ultralytics pickle, for mutation.
fn real_pickle() -> Vec<u8> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/yolov8/tiny_yolov8.pt");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(file).unwrap()).unwrap();
    let name = zip.file_names().find(|n| n.ends_with("data.pkl")).unwrap().to_string();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name(&name).unwrap(), &mut bytes).unwrap();
    bytes
}

/// Byte positions and values to overwrite, and where to cut.
fn mutations() -> impl Strategy<Value = (Vec<(usize, u8)>, usize)> {
    (prop::collection::vec((any::<usize>(), any::<u8>()), 1..8), any::<usize>())
}

fn mutate(mut bytes: Vec<u8>, (writes, cut): &(Vec<(usize, u8)>, usize)) -> Vec<u8> {
    for &(at, value) in writes {
        let len = bytes.len();
        bytes[at % len] = value;
    }
    if cut % 4 == 0 {
        bytes.truncate(cut / 4 % bytes.len());
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any bytes: the pickle reader answers, with an object or an error.
    #[test]
    fn the_pickle_reader_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = read_pickle(&mut bytes.as_slice());
    }

    /// A real pickle with some bytes changed or cut short.
    #[test]
    fn the_pickle_reader_survives_a_mutated_checkpoint(mutation in mutations()) {
        let bytes = mutate(real_pickle(), &mutation);
        let _ = read_pickle(&mut bytes.as_slice());
    }

    /// COCO annotations mutated: `data check` answers with a message, never a crash.
    #[test]
    fn the_coco_reader_survives_mutations(mutation in mutations()) {
        let root = synthetic().join("coco");
        mutated(&root.join("annotations/instances_train.json"), &mutation);
        check_answers(&["data", "check", "--voc", root.to_str().unwrap(), "--det-format", "coco", "--voc-split", "train"])?;
    }

    /// YOLO label files with arbitrary text.
    #[test]
    fn the_yolo_reader_survives_arbitrary_labels(text in "[0-9 .eE+\\-\\n\\t a-z]{0,200}") {
        let root = synthetic().join("yolo");
        std::fs::write(root.join("labels/train/000001.txt"), text).unwrap();
        check_answers(&["data", "check", "--voc", root.to_str().unwrap(), "--det-format", "yolo", "--voc-split", "train"])?;
    }

    /// Mask PNGs mutated.
    #[test]
    fn the_mask_reader_survives_mutated_masks(mutation in mutations()) {
        let root = synthetic().join("masks");
        mutated(&root.join("masks/training/ADE_train_00000001.png"), &mutation);
        check_answers(&["data", "check", "--ade", root.to_str().unwrap(), "--seg-format", "masks", "--ade-split", "training"])?;
    }
}

/// Two images of each task in every layout, made once per process (the
/// property tests mutate its files: nextest gives each test its own process).
fn synthetic() -> &'static Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| common::every_layout(2, 32, &["--val-fraction", "0"]))
}

/// Writes `file`'s first contents (kept beside the datasets), mutated.
fn mutated(file: &Path, mutation: &(Vec<(usize, u8)>, usize)) {
    let original = synthetic().join(file.file_name().unwrap()).with_extension("original");
    if !original.exists() {
        std::fs::copy(file, &original).unwrap();
    }
    std::fs::write(file, mutate(std::fs::read(&original).unwrap(), mutation)).unwrap();
}

/// `data check` ends with 0 (clean), 2 (refused) or 3 (problems found), and
/// says something.
fn check_answers(args: &[&str]) -> Result<(), TestCaseError> {
    let out = twinhead(args);
    let said = out.stdout.len() + out.stderr.len();
    prop_assert!(matches!(out.status.code(), Some(0 | 2 | 3)) && said > 0, "{args:?}: {:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// File and folder names that are not UTF-8: YOLO images and class folders
/// are read under them; a VOC annotation, whose id must be text, is a
/// problem that `data check` names.
#[test]
fn names_that_are_not_utf8_are_read_or_named() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let made = twinhead(&["data", "synth", "--out", dir.path().to_str().unwrap(), "--det-images", "3", "--seg-images", "0", "--cls-images", "0", "--size", "32", "--val-fraction", "0", "--det-format", "yolo"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let latin1 = |suffix: &str| OsStr::from_bytes(&[b"caf\xe9", suffix.as_bytes()].concat()).to_os_string();
    let check = |args: &[&str]| -> serde_json::Value {
        let out = twinhead(&[&["data", "check", "--json"], args].concat());
        assert!(matches!(out.status.code(), Some(0 | 3)), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // YOLO: the image and its label file renamed; every box still counted.
    let yolo = dir.path().join("yolo");
    let before = check(&["--voc", yolo.to_str().unwrap(), "--det-format", "yolo", "--voc-split", "train"]);
    std::fs::rename(yolo.join("images/train/000001.jpg"), yolo.join("images/train").join(latin1(".jpg"))).unwrap();
    std::fs::rename(yolo.join("labels/train/000001.txt"), yolo.join("labels/train").join(latin1(".txt"))).unwrap();
    let after = check(&["--voc", yolo.to_str().unwrap(), "--det-format", "yolo", "--voc-split", "train"]);
    assert_eq!((after["voc"]["images"].clone(), after["voc"]["objects"].clone()), (before["voc"]["images"].clone(), before["voc"]["objects"].clone()));

    // Classification folders: a class folder named in Latin-1 is a class with its images.
    let cls = dir.path().join("folders");
    for (class, name) in [(latin1(""), "a.png"), ("dog".into(), "b.png")] {
        std::fs::create_dir_all(cls.join(&class)).unwrap();
        image::RgbImage::new(8, 8).save(cls.join(&class).join(name)).unwrap();
    }
    let report = check(&["--cls", cls.to_str().unwrap(), "--cls-format", "folders"]);
    assert_eq!(report["cls"]["images"], 2, "{report}");
    assert_eq!(report["cls"]["per_class"][0][0], "caf\u{fffd}", "{report}");

    // VOC without split lists: the annotation is named as a problem, not skipped in silence.
    let voc = dir.path().join("voc");
    std::fs::remove_dir_all(voc.join("ImageSets")).unwrap();
    std::fs::rename(voc.join("Annotations/000001.xml"), voc.join("Annotations").join(latin1(".xml"))).unwrap();
    let report = check(&["--voc", voc.to_str().unwrap()]);
    let problems = report["problems"].to_string();
    assert!(problems.contains("caf") && problems.contains("not UTF-8"), "{report}");

    // A synthetic set is written, and found again, under a Latin-1 folder;
    // a run folder there is refused before anything is written, since its log
    // (JSON lines) cannot name it.
    let run = |args: &[&OsStr]| std::process::Command::new(env!("CARGO_BIN_EXE_twinhead")).args(args).output().unwrap();
    let folder = dir.path().join(latin1(""));
    let synth: Vec<&OsStr> = ["data", "synth", "--det-images", "2", "--seg-images", "2", "--size", "32", "--out"].map(OsStr::new).into_iter().chain([folder.as_os_str()]).collect();
    for _ in 0..2 {
        let made = run(&synth);
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    }
    assert!(folder.join("voc/Annotations").is_dir() && folder.join("synth.json").is_file());
    let runs = folder.join("runs");
    let voc = format!("data.voc={}", dir.path().join("voc").display());
    let train: Vec<&OsStr> = ["train", "--preset", "quick", "--set", &voc, "--set", "data.tasks=det", "--set", "steps=1", "--out"].map(OsStr::new).into_iter().chain([runs.as_os_str()]).collect();
    let refused = run(&train);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("run folder's path is not UTF-8") && stderr.contains("caf"), "{stderr}");
    assert!(!runs.exists(), "nothing is written for a refused run");
}

/// Numbers a program cannot allocate or wait for, each refused with exit 2
/// naming its key or flag (clap's own errors too, as for a negative timeout).
#[test]
fn numbers_out_of_range_are_refused_naming_the_key_or_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let train = |set: &str| twinhead(&["train", "--preset", "quick", "--set", set, "--out", out.to_str().unwrap()]);
    for (set, key) in [("data.batch_size=1099511627776", "data.batch_size"), ("data.threads=100000", "data.threads"), ("steps=18446744073709551615", "steps"), ("data.image_size=1099511627776", "data.image_size")] {
        let result = train(set);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{set}: {stderr}");
        assert!(stderr.contains(key), "{set}: {stderr}");
    }
    for (args, flag) in [
        (&["bench", "data", "--batch-size", "1099511627776"][..], "--batch-size"),
        (&["bench", "data", "--size", "1000000"], "--size"),
        (&["bench", "data", "--threads", "100000"], "--threads"),
        (&["train", "--node-timeout", "-1"], "--node-timeout"),
        (&["export", "onnx", "--run", "nope", "--batch", "1099511627776"], "--batch"),
    ] {
        let result = twinhead(args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

/// Documents nested past any real file's depth, or a YAML alias bomb: each
/// reader (serde_json, serde-saphyr, toml) stops at its own limit and the
/// file is named, with no crash.
#[test]
fn deeply_nested_documents_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let deep = 100_000;

    // COCO JSON.
    let coco = dir.path().join("coco");
    common::copy_dir(&synthetic().join("coco"), &coco);
    let annotations = coco.join("annotations/instances_train.json");
    std::fs::write(&annotations, format!("{{\"images\": {}{}}}", "[".repeat(deep), "]".repeat(deep))).unwrap();
    let out = twinhead(&["data", "check", "--voc", coco.to_str().unwrap(), "--det-format", "coco", "--voc-split", "train"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(matches!(out.status.code(), Some(2 | 3)) && said.contains("instances_train.json"), "{:?}: {said}", out.status);

    // YOLO data.yaml: nested, and an alias bomb in `names:` (9^9 names if expanded).
    let yolo = dir.path().join("yolo");
    common::copy_dir(&synthetic().join("yolo"), &yolo);
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for level in 1..9 {
        let previous = format!("*a{}", level - 1);
        bomb += &format!("a{level}: &a{level} [{}]\n", vec![previous.as_str(); 9].join(", "));
    }
    bomb += "train: images/train\nnames: *a8\n";
    for yaml in [format!("names: {}{}\n", "[".repeat(deep), "]".repeat(deep)), bomb] {
        std::fs::write(yolo.join("data.yaml"), yaml).unwrap();
        let out = twinhead(&["data", "check", "--voc", yolo.to_str().unwrap(), "--det-format", "yolo", "--voc-split", "train"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code() == Some(2) && stderr.contains("data.yaml"), "{:?}: {stderr}", out.status);
    }

    // A preset TOML.
    let preset = dir.path().join("deep.toml");
    std::fs::write(&preset, format!("base = \"quick\"\nname = {}1{}\n", "[".repeat(deep), "]".repeat(deep))).unwrap();
    let out = twinhead(&["train", "--preset", preset.to_str().unwrap(), "--out", dir.path().join("run").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && stderr.contains("deep.toml"), "{:?}: {stderr}", out.status);
}
