//! The strategies as written, planned, described and checked.

use super::*;

fn parse(text: &str) -> Result<StrategyConfig, toml::de::Error> {
    toml::from_str(text)
}

const TWO: RunShape = RunShape { tasks: TaskSet::DET_SEG, steps: 20 };

fn two(steps: usize) -> RunShape {
    RunShape { steps, ..TWO }
}

const DET: TaskSet = TaskSet::of(&[Task::Det]);
const SEG: TaskSet = TaskSet::of(&[Task::Seg]);
const CLS: TaskSet = TaskSet::of(&[Task::Cls]);

#[test]
fn alternate_switches_every_period_steps() {
    let s = parse("kind = \"alternate\"\nperiod = 2").unwrap();
    let tasks: Vec<TaskSet> = (0..6).map(|i| s.plan(i, TWO).tasks).collect();
    assert_eq!(tasks, [DET, DET, SEG, SEG, DET, DET]);
    assert_eq!(parse("kind = \"alternate\"").unwrap().plan(1, TWO).tasks, SEG);
    assert_eq!(parse("kind = \"joint\"").unwrap().plan(7, TWO).tasks, TaskSet::DET_SEG);
    // Three tasks: round-robin, and joint trains all three every step.
    let three = RunShape { tasks: TaskSet::of(&Task::ALL), steps: 20 };
    let tasks: Vec<TaskSet> = (0..6).map(|i| s.plan(i, three).tasks).collect();
    assert_eq!(tasks, [DET, DET, SEG, SEG, CLS, CLS]);
    assert_eq!(parse("kind = \"joint\"").unwrap().plan(0, three).tasks.len(), 3);
}

#[test]
fn sequential_family_switches_task_and_lowers_the_rate() {
    let s = parse("kind = \"freeze\"\nfirst = \"seg\"\nswitch_step = 10\nlr_factor = 0.2\nfreeze = \"stages:2\"").unwrap();
    assert_eq!(s.plan(9, TWO), StepPlan { tasks: SEG, phase: 0, lr_factor: 1.0, replay: None });
    assert_eq!(s.plan(10, TWO), StepPlan { tasks: DET, phase: 1, lr_factor: 0.2, replay: None });
    assert!(matches!(&s, StrategyConfig::Freeze(Freeze { freeze: FreezeScope::Stages(2), .. })));
    assert_eq!(s.describe_phase(1, TWO), "freeze detection (lr ×0.2)");
    assert!(s.validate(two(20)).is_ok());
    assert!(s.validate(two(10)).unwrap_err().to_string().contains("switch_step"));
}

#[test]
fn replay_adds_a_first_task_batch_from_its_buffer_every_kth_second_phase_step() {
    let s = parse("kind = \"replay\"\nswitch_step = 10\nevery = 3").unwrap();
    let plans: Vec<(TaskSet, Option<Task>)> = (8..17).map(|i| (s.plan(i, TWO).tasks, s.plan(i, TWO).replay)).collect();
    let (r, both) = (Some(Task::Det), TaskSet::DET_SEG);
    assert_eq!(plans, [(DET, None), (DET, None), (SEG, None), (SEG, None), (both, r), (SEG, None), (SEG, None), (both, r), (SEG, None)]);
    assert_eq!(s.describe_phase(1, TWO), "replay segmentation (lr ×0.1; 1 step in 3 also replays detection from a buffer of 5%)");
    assert!(s.validate(two(20)).is_ok());
    for (bad, field) in [("every = 0", "strategy.every"), ("buffer = 0", "strategy.buffer"), ("buffer = 2.5", "strategy.buffer")] {
        let s = parse(&format!("kind = \"replay\"\nswitch_step = 10\n{bad}")).unwrap();
        assert!(s.validate(two(20)).unwrap_err().to_string().contains(field), "{bad}");
    }
}

#[test]
fn pseudo_labels_apply_in_pseudos_second_phase_and_throughout_alternate_with_the_option() {
    let s = parse("kind = \"pseudo\"\nfirst = \"seg\"\nswitch_step = 10\npseudo_labels = { weight = 0.5 }").unwrap();
    assert_eq!(s.plan(10, TWO), StepPlan { tasks: DET, phase: 1, lr_factor: 0.1, replay: None });
    assert_eq!(s.pseudo_labels(0), None);
    let labels = PseudoLabels { weight: 0.5, ..PseudoLabels::default() };
    assert_eq!(s.pseudo_labels(1), Some(labels));
    assert_eq!(s.describe_phase(1, TWO), "pseudo detection (lr ×0.1; the switch snapshot labels its images for segmentation, weight 0.5)");
    let alternate = parse("kind = \"alternate\"\npseudo_labels = true").unwrap();
    assert_eq!(alternate.pseudo_labels(0), Some(PseudoLabels::default()));
    assert_eq!(alternate.label(), "alternate + pseudo-labels");
    let tuned = parse("kind = \"alternate\"\n[pseudo_labels]\nbox_score = 0.3").unwrap();
    assert_eq!(tuned.pseudo_labels(0).map(|l| (l.weight, l.box_score)), Some((1.0, 0.3)));
    // Written out and read back, the option keeps its settings; off, it is left out.
    assert_eq!(parse(&toml::to_string(&tuned).unwrap()).unwrap(), tuned);
    assert!(!toml::to_string(&parse("kind = \"joint\"").unwrap()).unwrap().contains("pseudo"));
    assert_eq!(parse("kind = \"joint\"\npseudo_labels = false").unwrap().pseudo_labels(0), None);
    for (bad, field) in [
        ("weight = -1", "strategy.pseudo_labels.weight"),
        ("box_score = 1.0", "strategy.pseudo_labels.box_score"),
        ("pixel_confidence = 0", "strategy.pseudo_labels.pixel_confidence"),
        ("det_teacher = \"no/such/checkpoint\"", "strategy.pseudo_labels.det_teacher: no/such/checkpoint is not a folder"),
        ("seg_teacher = \"no/such/checkpoint\"", "strategy.pseudo_labels.seg_teacher"),
    ] {
        let s = parse(&format!("kind = \"joint\"\npseudo_labels = {{ {bad} }}")).unwrap();
        assert!(s.validate(two(20)).unwrap_err().to_string().contains(field), "{bad}");
    }
    // Specialists are named in the label and the phase description, and written back out.
    let folder = std::env::temp_dir();
    let text = format!("kind = \"alternate\"\n[pseudo_labels]\ndet_teacher = '{}'", folder.display());
    let specialist = parse(&text).unwrap();
    assert_eq!(specialist.label(), "alternate + specialists' pseudo-labels");
    assert!(specialist.validate(two(20)).is_ok());
    assert_eq!(parse(&toml::to_string(&specialist).unwrap()).unwrap(), specialist);
    let pseudo = parse(&format!("kind = \"pseudo\"\nfirst = \"det\"\nswitch_step = 10\n[pseudo_labels]\ndet_teacher = '{}'", folder.display())).unwrap();
    assert!(pseudo.describe_phase(1, TWO).contains("a specialist labels its images for detection"), "{}", pseudo.describe_phase(1, TWO));
    let err = parse("kind = \"joint\"\npseudo_labels = { wieght = 1 }").unwrap_err().to_string();
    assert!(err.contains("unknown field `wieght`"), "{err}");
}

#[test]
fn a_sequence_over_three_tasks_follows_its_order_and_switch_steps() {
    let three = RunShape { tasks: TaskSet::of(&Task::ALL), steps: 30 };
    let s = parse("kind = \"sequential\"\norder = [\"cls\", \"det\", \"seg\"]\nswitch_steps = [5, 12]").unwrap();
    let tasks: Vec<TaskSet> = [0, 4, 5, 11, 12, 29].iter().map(|&i| s.plan(i, three).tasks).collect();
    assert_eq!(tasks, [CLS, CLS, DET, DET, SEG, SEG]);
    assert_eq!(s.plan(12, three).phase, 2);
    assert_eq!(s.sequence().unwrap().first_task(), Task::Cls);
    assert_eq!(s.describe_phase(2, three), "sequential segmentation (lr ×0.1)");
    assert!(s.validate(three).is_ok());
    // Without an order: `first`, then the run's other tasks, the rest of the run split evenly.
    let s = parse("kind = \"freeze\"\nfirst = \"seg\"\nswitch_step = 10\nfreeze = \"backbone\"").unwrap();
    assert_eq!(s.schedule(three).unwrap(), TaskSchedule { order: vec![Task::Seg, Task::Det, Task::Cls], switches: vec![10, 20], lr_factor: 0.1 });
    // Written back, the two-task form stays as it was.
    let text = toml::to_string(&parse("kind = \"sequential\"\nswitch_step = 10").unwrap()).unwrap();
    assert!(!text.contains("order") && !text.contains("switch_steps"), "{text}");
    for (bad, field) in [
        ("order = [\"det\", \"seg\", \"cls\"]\nswitch_steps = [5]", "one step per switch"),
        ("order = [\"det\", \"det\"]\nswitch_steps = [5]", "each once"),
        ("order = [\"det\", \"seg\", \"cls\"]\nswitch_steps = [9, 5]", "increasing steps"),
    ] {
        let err = parse(&format!("kind = \"sequential\"\n{bad}")).unwrap().validate(three).unwrap_err().to_string();
        assert!(err.contains(field), "{bad}: {err}");
    }
    let err = parse("kind = \"sequential\"\norder = [\"cls\", \"det\"]\nswitch_steps = [5]").unwrap().validate(two(30)).unwrap_err();
    assert!(err.to_string().contains("the run has no classification dataset"), "{err}");
    // Replay over three phases rehearses the earlier tasks in turn.
    let s = parse("kind = \"replay\"\norder = [\"det\", \"cls\", \"seg\"]\nswitch_steps = [5, 12]\nevery = 2").unwrap();
    assert!(s.validate(three).is_ok());
    let replayed: Vec<Option<Task>> = (5..20).map(|i| s.plan(i, three).replay).collect();
    let (d, c) = (Some(Task::Det), Some(Task::Cls));
    assert_eq!(replayed, [None, d, None, d, None, d, None, None, d, None, c, None, d, None, c]);
    assert_eq!(s.plan(13, three).tasks, TaskSet::of(&[Task::Seg, Task::Det]));
    assert_eq!(s.describe_phase(2, three), "replay segmentation (lr ×0.1; 1 step in 2 also replays detection and classification from a buffer of 5%)");
}

#[test]
fn joint_combines_gradients_by_sum_or_pcgrad() {
    let pcgrad = parse("kind = \"joint\"\ngradients = \"pcgrad\"").unwrap();
    assert_eq!(pcgrad.gradients(), GradientCombination::Pcgrad);
    assert_eq!(pcgrad.label(), "joint + pcgrad");
    assert_eq!(parse(&toml::to_string(&pcgrad).unwrap()).unwrap(), pcgrad);
    // The default is the sum, and is not written: older runs' configs read and write unchanged.
    let joint = parse("kind = \"joint\"").unwrap();
    assert_eq!((joint.gradients(), joint.label().as_str()), (GradientCombination::Sum, "joint"));
    assert!(!toml::to_string(&joint).unwrap().contains("gradients"));
    assert_eq!(StrategyConfig::alternate().gradients(), GradientCombination::Sum);
    let err = parse("kind = \"joint\"\ngradients = \"cagrad\"").unwrap_err().to_string();
    assert!(err.contains("cagrad") && err.contains("pcgrad"), "{err}");
    assert!(parse("kind = \"alternate\"\ngradients = \"pcgrad\"").is_err());
}

#[test]
fn task_sets_read_and_write_as_keys() {
    let all = TaskSet::of(&Task::ALL);
    assert_eq!(String::from(all), "det+seg+cls");
    assert_eq!(String::from(TaskSet::DET_SEG), "both");
    assert_eq!(TaskSet::try_from("seg".to_string()), Ok(SEG));
    assert_eq!(TaskSet::try_from("cls+det".to_string()).map(String::from), Ok("det+cls".to_string()));
    assert!(TaskSet::try_from("det+box".to_string()).unwrap_err().contains("\"box\" is not a task"));
}

#[test]
fn bad_strategies_name_the_field() {
    let err = parse("kind = \"sequential\"\nswitch_step = 3\nlr = 1").unwrap_err().to_string();
    assert!(err.contains("unknown field `lr`"), "{err}");
    let err = parse("kind = \"freeze\"\nswitch_step = 3\nfreeze = \"head\"").unwrap_err().to_string();
    assert!(err.contains("\"head\" is not one of"), "{err}");
    let err = parse("kind = \"magic\"").unwrap_err().to_string();
    assert!(err.contains("unknown variant `magic`"), "{err}");
    assert!(parse("kind = \"alternate\"\nperiod = 0").unwrap().validate(two(10)).is_err());
    // A run of one task trains it alone: `joint` and `alternate` do, a sequence cannot.
    let seg_only = RunShape { tasks: SEG, steps: 10 };
    let err = parse("kind = \"lwf\"\nswitch_step = 3").unwrap().validate(seg_only).unwrap_err().to_string();
    assert!(err.contains("kind = \"lwf\"") && err.contains("one (seg)") && err.contains("joint"), "{err}");
    for kind in ["joint", "alternate"] {
        let strategy = parse(&format!("kind = \"{kind}\"")).unwrap();
        strategy.validate(seg_only).unwrap();
        assert_eq!(strategy.plan(3, seg_only).tasks, SEG);
    }
}

/// The config and state forms of every strategy, as earlier versions wrote
/// them: runs' config.toml, state.json and metrics.jsonl read and write unchanged.
#[test]
fn written_forms_are_unchanged() {
    let texts = [
        "kind = \"alternate\"\nperiod = 2\nweights = { det = 2 }\nseg_weight = 0.5\npseudo_labels = { box_score = 0.3 }",
        "kind = \"joint\"\ngradients = \"pcgrad\"\nweighting = \"uncertainty\"",
        "kind = \"joint\"",
        "kind = \"sequential\"\norder = [\"cls\", \"det\", \"seg\"]\nswitch_steps = [5, 12]",
        "kind = \"freeze\"\nfirst = \"seg\"\nswitch_step = 10\nlr_factor = 0.2\nfreeze = \"stages:2\"",
        "kind = \"lwf\"\nswitch_step = 10",
        "kind = \"ewc\"\nswitch_step = 10\nlambda = 3",
        "kind = \"replay\"\nswitch_step = 10\nevery = 3\nbuffer = 12",
        "kind = \"pseudo\"\nswitch_step = 10\n[pseudo_labels]\ndet_teacher = \"x/y\"\nweight = 0.5",
    ];
    let mut written = String::new();
    for text in texts {
        let strategy = parse(text).unwrap();
        let json = serde_json::to_string(&strategy).unwrap();
        written += &format!("{}\n---\n{json}\n===\n", toml::to_string(&strategy).unwrap());
        assert_eq!(serde_json::from_str::<StrategyConfig>(&json).unwrap(), strategy, "{json}");
    }
    assert_eq!(written, include_str!("../../../tests/fixtures/strategy_written_forms.txt"));
}

#[test]
fn every_kind_is_written_as_its_name_and_reads_back() {
    let kinds = StrategyConfig::every_kind(&Sequence::halfway(100));
    let names: Vec<&str> = kinds.iter().map(StrategyConfig::name).collect();
    assert_eq!(names, ["alternate", "joint", "sequential", "freeze", "lwf", "ewc", "replay", "pseudo"]);
    for strategy in kinds {
        let text = toml::to_string(&strategy).unwrap();
        assert!(text.starts_with(&format!("kind = \"{}\"\n", strategy.name())), "{text}");
        assert_eq!(parse(&text).unwrap(), strategy);
        strategy.validate(RunShape { tasks: TaskSet::DET_SEG, steps: 100 }).unwrap();
        // A sequence needs two tasks; the others train one alone.
        assert_eq!(strategy.get().supports(SEG), strategy.sequence().is_none(), "{}", strategy.name());
    }
    // An unknown key beside the shared sequence keys is still named.
    let err = parse("kind = \"ewc\"\nswitch_step = 3\nlamda = 1").unwrap_err().to_string();
    assert!(err.contains("unknown field `lamda`"), "{err}");
}

#[test]
fn a_new_strategy_keeps_the_sequence_and_defaults_the_rest() {
    let sequence = Sequence { first: Task::Seg, switch_step: 40, order: Vec::new(), switch_steps: Vec::new(), lr_factor: 0.5 };
    let current = StrategyConfig::Sequential(Sequential { sequence: sequence.clone() });
    let ewc = StrategyConfig::Ewc(Ewc { sequence, lambda: EWC_LAMBDA, fisher_batches: FISHER_BATCHES });
    assert_eq!(StrategyConfig::of_kind("ewc", &current, 100), Some(ewc));
    let alternate = StrategyConfig::of_kind("alternate", &current, 100).unwrap();
    assert_eq!(alternate, StrategyConfig::alternate());
    assert_eq!(StrategyConfig::of_kind("lwf", &alternate, 100).unwrap().sequence().unwrap().switch_step, 50);
    assert_eq!(StrategyConfig::of_kind("magic", &alternate, 100), None);
}

#[test]
fn rescaled_step_settings_keep_their_fraction_of_the_run() {
    // Compare's sweep (a preset's 600 steps onto the base run's 300) and a
    // capped run (TWINHEAD_STEPS) move them alike.
    let mut three = parse("kind = \"sequential\"\norder = [\"det\", \"seg\", \"cls\"]\nswitch_steps = [200, 400]").unwrap();
    three.rescale_steps(600, 300);
    assert_eq!(three.sequence().unwrap().switch_steps, [100, 200]);
    three.rescale_steps(300, 3);
    assert_eq!(three.sequence().unwrap().switch_steps, [1, 2], "inside the run and increasing");
    let mut two = parse("kind = \"replay\"\nswitch_step = 250").unwrap();
    two.rescale_steps(500, 1000);
    assert_eq!(two.sequence().unwrap().switch_step, 500);
    two.rescale_steps(1000, 1);
    assert_eq!(two.sequence().unwrap().switch_step, 500, "a one-step run has no switch: left for the check to refuse");
    let mut burn_in = parse("kind = \"alternate\"\npseudo_labels = { start_step = 250 }").unwrap();
    burn_in.rescale_steps(500, 8);
    assert_eq!(burn_in.pseudo_labels(0).unwrap().start_step, 4);
}
