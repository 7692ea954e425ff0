"""What ChipChip sells and when Addis shops: categories, product names, prices, vendors, holidays.

Category weights make Vegetable and Fruit dominate revenue as in ChipChip's real data
(~1.8M and ~0.9M of ~3.7M ETB a month); prices are ETB per measuring unit.
"""
from __future__ import annotations

import datetime as dt

# category -> (revenue weight, [(product name, measuring unit, low price, high price)])
CATALOG: dict[str, tuple[float, list[tuple[str, str, float, float]]]] = {
    "Vegetable": (0.47, [
        ("Tomato", "kg", 45, 70), ("Red Onion", "kg", 55, 90), ("Potato", "kg", 30, 45),
        ("Carrot", "kg", 40, 60), ("Cabbage", "piece", 30, 50), ("Garlic", "kg", 150, 240),
        ("Green Pepper (Karia)", "kg", 90, 140), ("Ethiopian Kale (Gomen)", "kg", 30, 50),
        ("Beetroot", "kg", 40, 60), ("Ginger", "kg", 150, 220), ("Lettuce", "piece", 25, 40),
        ("Spinach", "kg", 40, 60), ("Cucumber", "kg", 50, 80), ("Swiss Chard (Kosta)", "kg", 35, 55),
    ]),
    "Fruit": (0.24, [
        ("Banana", "kg", 40, 60), ("Avocado", "kg", 60, 100), ("Mango", "kg", 70, 120),
        ("Orange", "kg", 80, 120), ("Papaya", "kg", 50, 80), ("Apple", "kg", 200, 300),
        ("Pineapple", "piece", 80, 150), ("Lemon", "kg", 80, 120), ("Watermelon", "piece", 100, 200),
        ("Guava", "kg", 50, 80),
    ]),
    "Packed Food & Drink": (0.07, [
        ("Teff Flour (Magna)", "kg", 120, 160), ("Injera (5 pcs)", "pack", 60, 80),
        ("Pasta", "pack", 50, 70), ("Rice", "kg", 110, 150), ("Red Lentils (Misir)", "kg", 150, 190),
        ("Shiro Powder", "kg", 250, 350), ("Ambo Mineral Water", "litre", 25, 35),
        ("Roasted Coffee (Buna)", "kg", 600, 740),
    ]),
    "Condiments": (0.05, [
        ("Berbere", "kg", 400, 600), ("Mitmita", "pack", 80, 120), ("Salt", "kg", 20, 30),
        ("Sugar", "kg", 90, 120), ("Cooking Oil", "litre", 180, 250), ("Black Cumin (Tikur Azmud)", "pack", 60, 90),
    ]),
    "Baking Goods": (0.03, [
        ("Wheat Flour", "kg", 70, 90), ("Baking Powder", "pack", 40, 60), ("Dry Yeast", "pack", 30, 50),
        ("Margarine", "pack", 150, 200),
    ]),
    "Meat and Poultry": (0.045, [
        ("Chicken (Doro)", "piece", 550, 720), ("Beef", "kg", 600, 740), ("Eggs (12)", "pack", 150, 190),
        ("Minced Meat", "kg", 600, 720),
    ]),
    "Personal Care": (0.02, [
        ("Toothpaste", "piece", 60, 110), ("Bath Soap", "piece", 30, 55), ("Shampoo", "piece", 120, 220),
        ("Body Lotion", "piece", 150, 260),
    ]),
    "Household": (0.025, [
        ("Laundry Detergent (Omo)", "kg", 140, 200), ("Dish Soap", "litre", 80, 120),
        ("Tissue Paper", "pack", 90, 140), ("Charcoal", "sack", 250, 400),
    ]),
    "Cloth & Fashion": (0.01, [
        ("Netela Scarf", "piece", 350, 700), ("Cotton T-shirt", "piece", 250, 450), ("Socks", "pack", 90, 150),
    ]),
    "Dairy": (0.03, [
        ("Fresh Milk", "litre", 70, 90), ("Yogurt (Ergo)", "litre", 80, 110),
        ("Cottage Cheese (Ayib)", "kg", 250, 350), ("Spiced Butter (Kibe) 500g", "pack", 380, 480),
    ]),
    "Holiday": (0.01, [
        ("Holiday Chicken Bundle", "pack", 600, 740), ("Tuaf Candles", "pack", 40, 70),
        ("Meskel Adey Abeba Bouquet", "piece", 50, 90), ("Holiday Spice Kit", "pack", 250, 400),
    ]),
    "Baby Items": (0.01, [
        ("Diapers", "pack", 350, 600), ("Baby Wipes", "pack", 90, 150), ("Baby Formula", "piece", 550, 740),
    ]),
}

PLACES = ["Addis", "Sheger", "Merkato", "Bole", "Entoto", "Awash", "Abyssinia", "Lalibela", "Harar",
          "Sidamo", "Bishoftu", "Gurage", "Piassa", "Arat Kilo", "Kality", "Tana", "Rift Valley",
          "Ziway", "Hawassa", "Adama", "Bahir Dar", "Gondar", "Jimma", "Dire Dawa", "Axum",
          "Yeka", "Kolfe", "Lideta", "Sululta", "Burayu", "Sebeta", "Mojo", "Debre Birhan",
          "Wolkite", "Dessie", "Arsi", "Bale", "Wollega", "Gojjam", "Shashemene"]
KINDS = ["Fresh Farms", "Produce", "Wholesale", "Organic", "Greens", "Fruits", "Foods", "Trading",
         "Agro Supply", "Market", "Grocers", "Harvest", "Traders", "Essentials", "Farm Coop"]
CITIES = ["Addis Ababa", "Addis Ababa", "Addis Ababa", "Adama", "Bishoftu", "Hawassa", "Sebeta"]

FIRST_NAMES = ["Abebe", "Almaz", "Biniam", "Bethlehem", "Dawit", "Eden", "Fikre", "Genet", "Haile",
               "Hanna", "Kebede", "Lidya", "Meron", "Mulugeta", "Nardos", "Robel", "Saron", "Selam",
               "Tadesse", "Tigist", "Yared", "Yonas", "Zewdu", "Mekdes", "Hirut", "Samuel", "Ruth",
               "Elias", "Martha", "Kidus", "Aster", "Bereket", "Helen", "Solomon", "Tsion", "Amanuel"]
LAST_NAMES = ["Bekele", "Tesfaye", "Girma", "Alemu", "Haile", "Mengistu", "Kebede", "Assefa",
              "Wolde", "Tadesse", "Abera", "Desta", "Getachew", "Negash", "Mulatu", "Gebre",
              "Ayele", "Demissie", "Tilahun", "Worku"]

PAYMENT_METHODS = ["CHAPA", "CHIPCHIP_PAY", "CHIPCHIP_WALLET", "WE_BIRR", "CASH_ON_DELIVERY"]
PAYMENT_SHARES = [0.32, 0.14, 0.2, 0.1, 0.24]

# Ethiopian holidays that move demand (Gregorian dates; Fasika and the two Eids move each year).
_FIXED = [(1, 7, "Genna"), (1, 19, "Timkat"), (9, 11, "Enkutatash"), (9, 27, "Meskel")]
_MOVING = {
    2023: [(4, 16, "Fasika"), (4, 21, "Eid al-Fitr"), (6, 28, "Eid al-Adha")],
    2024: [(5, 5, "Fasika"), (4, 10, "Eid al-Fitr"), (6, 16, "Eid al-Adha")],
    2025: [(4, 20, "Fasika"), (3, 30, "Eid al-Fitr"), (6, 6, "Eid al-Adha")],
    2026: [(4, 12, "Fasika"), (3, 20, "Eid al-Fitr"), (5, 27, "Eid al-Adha")],
    2027: [(5, 2, "Fasika"), (3, 9, "Eid al-Fitr"), (5, 16, "Eid al-Adha")],
    2028: [(4, 16, "Fasika"), (2, 26, "Eid al-Fitr"), (5, 5, "Eid al-Adha")],
}


def holidays(first_year: int, last_year: int) -> list[tuple[dt.date, str]]:
    out = []
    for year in range(first_year, last_year + 1):
        for month, day, name in _FIXED + _MOVING.get(year, []):
            out.append((dt.date(year, month, day), name))
    return sorted(out)
