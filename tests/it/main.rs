//! The integration tests, one crate: each module was a test file of its own,
//! and each of those linked burn again (the test build's largest cost).
//! nextest still runs every test in a process of its own; `module::test`
//! names a test (`cargo nextest run --test it train_engine::`).

mod common;
mod compress;
mod data_formats;
mod data_parallel;
mod data_readers;
mod doc_commands;
mod eval_cli;
mod hostile_inputs;
mod layering;
mod gui;
mod gui_preview;
mod portable_binary;
mod remote;
mod resnet_import;
mod run_outputs;
mod single_task_outputs;
mod synth_loader;
mod three_task_outputs;
mod train_engine;
mod wgpu;
