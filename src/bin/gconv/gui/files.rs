//! Choosing a file from disk inside the window (no native dialog: nothing more to link, and
//! it works the same under Xvfb and in the headless tests): a folder listing filtered by
//! extension, folders to walk into, and an editable path.

use eframe::egui;
use std::path::{Path, PathBuf};

/// What the chosen file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// An ONNX model for the `models` suite.
    OnnxModel,
    /// A report to show.
    OpenReport,
    /// The old side of a comparison.
    CompareOld,
    /// The new side of a comparison.
    CompareNew,
}

impl Purpose {
    fn extension(self) -> &'static str {
        match self {
            Purpose::OnnxModel => "onnx",
            _ => "json",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Purpose::OnnxModel => "Choose an ONNX model",
            Purpose::OpenReport => "Open a report.json",
            Purpose::CompareOld => "Old report (the reference)",
            Purpose::CompareNew => "New report",
        }
    }
}

/// The picker's state.
#[derive(Clone, Debug)]
pub struct FilePicker {
    /// What the file is for.
    pub purpose: Purpose,
    /// The folder listed.
    pub dir: PathBuf,
    /// The path typed or clicked.
    pub path: String,
    entries: Vec<(String, bool)>,
    error: Option<String>,
}

/// What the picker's frame ended with.
#[derive(Debug, PartialEq)]
pub enum Picked {
    /// Still open.
    Open,
    /// Closed without a file.
    Cancelled,
    /// This file was chosen.
    File(PathBuf),
}

impl FilePicker {
    /// A picker for `purpose` listing `dir`.
    pub fn new(purpose: Purpose, dir: &Path) -> Self {
        let mut p = Self {
            purpose,
            dir: dir.to_path_buf(),
            path: String::new(),
            entries: Vec::new(),
            error: None,
        };
        p.list();
        p
    }

    /// Lists the folder: sub-folders, then files with the purpose's extension, by name.
    fn list(&mut self) {
        self.entries.clear();
        self.error = None;
        match std::fs::read_dir(&self.dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                    let ext_ok = Path::new(&name)
                        .extension()
                        .is_some_and(|x| x.eq_ignore_ascii_case(self.purpose.extension()));
                    if (is_dir && !name.starts_with('.')) || ext_ok {
                        self.entries.push((name, is_dir));
                    }
                }
                self.entries
                    .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            }
            Err(e) => self.error = Some(format!("{}: {e}", self.dir.display())),
        }
    }

    /// Enters folder `name` (`..`: the parent).
    pub fn enter(&mut self, name: &str) {
        self.dir = if name == ".." {
            self.dir
                .parent()
                .map_or(self.dir.clone(), Path::to_path_buf)
        } else {
            self.dir.join(name)
        };
        self.list();
    }

    /// The file names listed (folders end in `/`).
    #[cfg(test)]
    pub fn listing(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(n, d)| if *d { format!("{n}/") } else { n.clone() })
            .collect()
    }

    /// The typed path as a file, or why not.
    pub fn choose(&self) -> Result<PathBuf, String> {
        let p = PathBuf::from(self.path.trim());
        let p = if p.is_relative() { self.dir.join(p) } else { p };
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{} is not a file", p.display()))
        }
    }

    /// Shows the picker as a window.
    pub fn show(&mut self, ctx: &egui::Context) -> Picked {
        let mut out = Picked::Open;
        let mut enter = None;
        egui::Window::new(self.purpose.title())
            .collapsible(false)
            .default_size([520.0, 420.0])
            .show(ctx, |ui| {
                ui.label(format!("Folder: {}", self.dir.display()));
                egui::ScrollArea::vertical()
                    .max_height(280.0)
                    .show(ui, |ui| {
                        if ui.selectable_label(false, "../").clicked() {
                            enter = Some("..".to_string());
                        }
                        for (name, is_dir) in &self.entries {
                            let label = if *is_dir {
                                format!("{name}/")
                            } else {
                                name.clone()
                            };
                            let selected = !*is_dir && self.path == *name;
                            let r = ui.selectable_label(selected, label);
                            if r.clicked() {
                                if *is_dir {
                                    enter = Some(name.clone());
                                } else {
                                    self.path = name.clone();
                                }
                            }
                            if !*is_dir && r.double_clicked() {
                                out = Picked::File(self.dir.join(name));
                            }
                        }
                    });
                ui.horizontal(|ui| {
                    let l = ui.label("File:");
                    ui.text_edit_singleline(&mut self.path).labelled_by(l.id);
                });
                if let Some(e) = &self.error {
                    ui.colored_label(egui::Color32::RED, e);
                }
                ui.horizontal(|ui| {
                    if ui.button("Open").clicked() {
                        match self.choose() {
                            Ok(p) => out = Picked::File(p),
                            Err(e) => self.error = Some(e),
                        }
                    }
                    if ui.button("Cancel").clicked() {
                        out = Picked::Cancelled;
                    }
                });
            });
        if let Some(name) = enter {
            self.enter(&name);
        }
        out
    }
}
