//! Words both generators use: object colours and the nine positions of a 3×3 layout, each with
//! the name a caption uses for it.
use serde::{Deserialize, Serialize};

/// Object colours: saturated or bright, so they stand out on the dark and grey backgrounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Colour {
    Red,
    Orange,
    Yellow,
    Green,
    Cyan,
    Blue,
    Purple,
    Pink,
    White,
    Brown,
}

impl Colour {
    pub const ALL: [Colour; 10] = [
        Colour::Red,
        Colour::Orange,
        Colour::Yellow,
        Colour::Green,
        Colour::Cyan,
        Colour::Blue,
        Colour::Purple,
        Colour::Pink,
        Colour::White,
        Colour::Brown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Orange => "orange",
            Colour::Yellow => "yellow",
            Colour::Green => "green",
            Colour::Cyan => "cyan",
            Colour::Blue => "blue",
            Colour::Purple => "purple",
            Colour::Pink => "pink",
            Colour::White => "white",
            Colour::Brown => "brown",
        }
    }

    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 30, 30],
            Colour::Orange => [245, 140, 20],
            Colour::Yellow => [245, 225, 40],
            Colour::Green => [40, 180, 60],
            Colour::Cyan => [40, 210, 220],
            Colour::Blue => [40, 80, 230],
            Colour::Purple => [140, 50, 200],
            Colour::Pink => [245, 130, 190],
            Colour::White => [245, 245, 245],
            Colour::Brown => [140, 85, 40],
        }
    }
}

/// The cells of a 3×3 layout, row-major from the top left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Position {
    TopLeft,
    Top,
    TopRight,
    Left,
    Centre,
    Right,
    BottomLeft,
    Bottom,
    BottomRight,
}

impl Position {
    pub const ALL: [Position; 9] = [
        Position::TopLeft,
        Position::Top,
        Position::TopRight,
        Position::Left,
        Position::Centre,
        Position::Right,
        Position::BottomLeft,
        Position::Bottom,
        Position::BottomRight,
    ];

    /// (column, row), each in 0..3.
    pub fn cell(self) -> (u32, u32) {
        let i = Position::ALL
            .iter()
            .position(|&p| p == self)
            .expect("in ALL") as u32;
        (i % 3, i / 3)
    }

    /// The short name, e.g. "top left", "centre".
    pub fn name(self) -> &'static str {
        match self {
            Position::TopLeft => "top left",
            Position::Top => "top",
            Position::TopRight => "top right",
            Position::Left => "left",
            Position::Centre => "centre",
            Position::Right => "right",
            Position::BottomLeft => "bottom left",
            Position::Bottom => "bottom",
            Position::BottomRight => "bottom right",
        }
    }

    /// The phrase a caption uses, e.g. "at the top left", "on the right", "in the centre".
    pub fn phrase(self) -> &'static str {
        match self {
            Position::TopLeft => "at the top left",
            Position::Top => "at the top",
            Position::TopRight => "at the top right",
            Position::Left => "on the left",
            Position::Centre => "in the centre",
            Position::Right => "on the right",
            Position::BottomLeft => "at the bottom left",
            Position::Bottom => "at the bottom",
            Position::BottomRight => "at the bottom right",
        }
    }
}
