//! Text laid out on A4 pages with printpdf: lines wrapped by the font's own widths, a new
//! page when one is full, a heading never alone at the foot of a page, and "Pagina i van n"
//! under every page once the count is known.
//!
//! The faces are DejaVu Sans and DejaVu Sans Bold (`cli/fonts/`, Bitstream Vera licence),
//! embedded in every PDF: the PDF standard fonts know only WinAnsi, which covers Dutch but
//! not the names of many families in the Netherlands (Şahin, Yıldız, Wiśniewski would print
//! as "?"). printpdf embeds the whole face (about 0.7 MB each, compressed) because subsetting
//! needs its heavy `text_layout` feature; a printout is made once, so size matters less than
//! a name spelled right. The text is real text, so the PDF can be searched and read aloud.

use printpdf::{
    Color, FontId, Line, LinePoint, Mm, Op, ParsedFont, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions,
    Point, Pt, Rgb, TextItem,
};

use super::PdfError;

const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN_X: f32 = 20.0;
const MARGIN_TOP: f32 = 20.0;
/// Room under the text for the page number.
const MARGIN_BOTTOM: f32 = 22.0;
const MM_PER_PT: f32 = 25.4 / 72.0;

/// How a piece of text looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Style {
    Title,
    Section,
    Domain,
    Goal,
    Body,
    Small,
}

impl Style {
    fn size(self) -> f32 {
        match self {
            Style::Title => 20.0,
            Style::Section => 15.0,
            Style::Domain => 13.0,
            Style::Goal => 11.5,
            Style::Body => 11.0,
            Style::Small => 9.5,
        }
    }

    fn bold(self) -> bool {
        matches!(self, Style::Title | Style::Section | Style::Domain | Style::Goal)
    }

    /// Space above, in mm.
    fn space_before(self) -> f32 {
        match self {
            Style::Title => 0.0,
            Style::Section => 7.0,
            Style::Domain => 4.5,
            Style::Goal => 3.0,
            Style::Body => 1.2,
            Style::Small => 0.4,
        }
    }

    fn is_heading(self) -> bool {
        self.bold()
    }

    fn colour(self) -> Rgb {
        match self {
            Style::Section => Rgb { r: 0.11, g: 0.31, b: 0.42, icc_profile: None },
            Style::Small => Rgb { r: 0.25, g: 0.25, b: 0.25, icc_profile: None },
            _ => Rgb { r: 0.07, g: 0.07, b: 0.07, icc_profile: None },
        }
    }
}

/// One paragraph: a style, an indent (mm) and a first-line marker (a bullet) in the indent.
#[derive(Debug, Clone)]
pub struct Block {
    pub style: Style,
    pub indent: f32,
    pub bullet: bool,
    pub text: String,
}

impl Block {
    pub fn new(style: Style, text: impl Into<String>) -> Block {
        Block { style, indent: 0.0, bullet: false, text: text.into() }
    }

    pub fn bullet(style: Style, indent: f32, text: impl Into<String>) -> Block {
        Block { style, indent, bullet: true, text: text.into() }
    }

    pub fn indented(style: Style, indent: f32, text: impl Into<String>) -> Block {
        Block { style, indent, bullet: false, text: text.into() }
    }
}

/// The two faces with the widths the layout measures by.
struct Fonts {
    regular: ParsedFont,
    bold: ParsedFont,
    /// Their ids in the document, once added to it.
    ids: (FontId, FontId),
}

const REGULAR: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");
const BOLD: &[u8] = include_bytes!("../../fonts/DejaVuSans-Bold.ttf");

impl Fonts {
    fn load(doc: &mut PdfDocument) -> Result<Fonts, PdfError> {
        let face = |bytes: &[u8], name: &'static str| {
            ParsedFont::from_bytes(bytes, 0, &mut Vec::new()).ok_or(PdfError::Font(name))
        };
        let regular = face(REGULAR, "DejaVu Sans")?;
        let bold = face(BOLD, "DejaVu Sans Bold")?;
        let ids = (doc.add_font(&regular), doc.add_font(&bold));
        Ok(Fonts { regular, bold, ids })
    }

    fn handle(&self, style: Style) -> PdfFontHandle {
        PdfFontHandle::External(if style.bold() { self.ids.1.clone() } else { self.ids.0.clone() })
    }

    /// The width of `text` in mm. A character the face lacks is measured as the `?` it will
    /// be printed as.
    fn width(&self, style: Style, text: &str) -> f32 {
        let font = if style.bold() { &self.bold } else { &self.regular };
        let units = f32::from(font.units_per_em.max(1));
        let advance = |c: char| {
            let gid = font.lookup_glyph_index(c as u32).or_else(|| font.lookup_glyph_index('?' as u32));
            gid.and_then(|g| font.get_glyph_width(g)).map_or(units / 2.0, f32::from)
        };
        text.chars().map(advance).sum::<f32>() / units * style.size() * MM_PER_PT
    }

    /// `text` in lines no wider than `max` mm, broken between words (a word longer than a
    /// line is broken inside).
    fn wrap(&self, style: Style, text: &str, max: f32) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() { word.to_owned() } else { format!("{line} {word}") };
            if self.width(style, &candidate) <= max {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            line = self.break_long_word(style, word, max, &mut lines);
        }
        if !line.is_empty() || lines.is_empty() {
            lines.push(line);
        }
        lines
    }

    fn break_long_word(&self, style: Style, word: &str, max: f32, lines: &mut Vec<String>) -> String {
        let mut part = String::new();
        for c in word.chars() {
            part.push(c);
            if self.width(style, &part) > max && part.chars().count() > 1 {
                part.pop();
                lines.push(std::mem::replace(&mut part, c.to_string()));
            }
        }
        part
    }
}

fn line_height(style: Style) -> f32 {
    style.size() * 1.35 * MM_PER_PT
}

/// Fills pages top to bottom.
struct Pages {
    fonts: Fonts,
    done: Vec<Vec<Op>>,
    ops: Vec<Op>,
    /// The baseline of the next line, in mm from the top of the page.
    y: f32,
}

impl Pages {
    fn new(fonts: Fonts) -> Pages {
        Pages { fonts, done: Vec::new(), ops: Vec::new(), y: MARGIN_TOP }
    }

    fn room(&self) -> f32 {
        PAGE_H - MARGIN_BOTTOM - self.y
    }

    fn new_page(&mut self) {
        self.done.push(std::mem::take(&mut self.ops));
        self.y = MARGIN_TOP;
    }

    /// Lays out one block; `next` (the block after it) keeps a heading with its first lines.
    fn block(&mut self, block: &Block, next: Option<&Block>) {
        let style = block.style;
        let width = PAGE_W - 2.0 * MARGIN_X - block.indent;
        let lines = self.fonts.wrap(style, &block.text, width);
        let lh = line_height(style);
        let at_top = self.y <= MARGIN_TOP;
        let mut needed = style.space_before() + lh * lines.len().min(3) as f32;
        if style.is_heading() {
            needed += next.map_or(0.0, |n| n.style.space_before() + 2.0 * line_height(n.style));
        }
        if !at_top && needed > self.room() {
            self.new_page();
        }
        if self.y > MARGIN_TOP {
            self.y += style.space_before();
        }
        for (i, line) in lines.iter().enumerate() {
            if lh > self.room() {
                self.new_page();
            }
            self.y += lh;
            if i == 0 && block.bullet {
                self.text(style, MARGIN_X + block.indent - 4.0, "•");
            }
            self.text(style, MARGIN_X + block.indent, line);
        }
        if style == Style::Section {
            self.rule();
        }
    }

    /// One line of text with its baseline at the current `y`.
    fn text(&mut self, style: Style, x: f32, text: &str) {
        self.ops.extend([
            Op::StartTextSection,
            Op::SetFillColor { col: Color::Rgb(style.colour()) },
            Op::SetFont { font: self.fonts.handle(style), size: Pt(style.size()) },
            Op::SetTextCursor { pos: Point::new(Mm(x), Mm(PAGE_H - self.y)) },
            Op::ShowText { items: vec![TextItem::Text(text.to_owned())] },
            Op::EndTextSection,
        ]);
    }

    /// The line under a section heading.
    fn rule(&mut self) {
        self.y += 1.2;
        let y = Mm(PAGE_H - self.y);
        let point = |x| LinePoint { p: Point::new(Mm(x), y), bezier: false };
        self.ops.extend([
            Op::SetOutlineColor { col: Color::Rgb(Style::Section.colour()) },
            Op::SetOutlineThickness { pt: Pt(1.2) },
            Op::DrawLine {
                line: Line { points: vec![point(MARGIN_X), point(PAGE_W - MARGIN_X)], is_closed: false },
            },
        ]);
    }

    /// Every page, each with its number at the foot.
    fn finish(mut self) -> Vec<PdfPage> {
        self.done.push(std::mem::take(&mut self.ops));
        let count = self.done.len();
        let mut pages = Vec::with_capacity(count);
        for (i, ops) in std::mem::take(&mut self.done).into_iter().enumerate() {
            self.ops = ops;
            let number = format!("Pagina {} van {count}", i + 1);
            let x = (PAGE_W - self.fonts.width(Style::Small, &number)) / 2.0;
            self.y = PAGE_H - 12.0;
            self.text(Style::Small, x, &number);
            pages.push(PdfPage::new(Mm(PAGE_W), Mm(PAGE_H), std::mem::take(&mut self.ops)));
        }
        pages
    }
}

/// `blocks` as an A4 PDF titled `title`.
pub fn render(title: &str, blocks: &[Block]) -> Result<Vec<u8>, PdfError> {
    let mut doc = PdfDocument::new(title);
    let mut pages = Pages::new(Fonts::load(&mut doc)?);
    for (i, block) in blocks.iter().enumerate() {
        pages.block(block, blocks.get(i + 1));
    }
    let mut warnings = Vec::new();
    Ok(doc.with_pages(pages.finish()).save(&PdfSaveOptions::default(), &mut warnings))
}
