"""The built-in world cities of the offline weather provider, with the climate normals it draws on."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["CITIES", "City", "normalize_name"]


@dataclass(frozen=True)
class City:
    """A city and its climate normals.

    Attributes:
        name: Common English name.
        admin1: First-level region (state, province), "" when not useful.
        country: Country name.
        country_code: ISO 3166-1 alpha-2 code.
        latitude: Degrees north.
        longitude: Degrees east.
        elevation_m: Metres above sea level.
        timezone: IANA time zone.
        population: Approximate city population (used to rank ambiguous names).
        jan_mean_c: Mean daily temperature in January, degrees Celsius.
        jul_mean_c: Mean daily temperature in July, degrees Celsius.
        precip_mm: Mean annual precipitation, millimetres.
        wet_days: Mean number of days a year with at least 1 mm of precipitation.
    """

    name: str
    admin1: str
    country: str
    country_code: str
    latitude: float
    longitude: float
    elevation_m: int
    timezone: str
    population: int
    jan_mean_c: float
    jul_mean_c: float
    precip_mm: int
    wet_days: int

    @property
    def key(self) -> str:
        """A stable identifier, e.g. ``paris-fr`` or ``portland-us-oregon``."""
        parts = [self.name, self.country_code] + ([self.admin1] if self.admin1 else [])
        return "-".join(normalize_name(p).replace(" ", "-") for p in parts)

    @property
    def label(self) -> str:
        """A readable label, e.g. ``Portland, Oregon, United States``."""
        return ", ".join(p for p in (self.name, self.admin1, self.country) if p)


def normalize_name(text: str) -> str:
    """Lower-case, strip accents and punctuation, collapse spaces: ``"São Paulo"`` -> ``"sao paulo"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", ascii_only.lower()).strip()


# fmt: off
# name, admin1, country, code, lat, lon, elevation, timezone, population, Jan mean, Jul mean, precip mm, wet days
_ROWS: tuple[tuple[str, str, str, str, float, float, int, str, int, float, float, int, int], ...] = (
    ("London", "England", "United Kingdom", "GB", 51.5074, -0.1278, 11, "Europe/London", 8_982_000, 5.2, 18.7, 600, 110),
    ("Manchester", "England", "United Kingdom", "GB", 53.4808, -2.2426, 38, "Europe/London", 553_000, 4.6, 16.8, 870, 140),
    ("Edinburgh", "Scotland", "United Kingdom", "GB", 55.9533, -3.1883, 47, "Europe/London", 527_000, 4.0, 15.3, 700, 125),
    ("Cambridge", "England", "United Kingdom", "GB", 52.2053, 0.1218, 12, "Europe/London", 145_000, 4.4, 17.8, 560, 105),
    ("Dublin", "Leinster", "Ireland", "IE", 53.3498, -6.2603, 20, "Europe/Dublin", 592_000, 5.3, 15.6, 760, 130),
    ("Paris", "Ile-de-France", "France", "FR", 48.8566, 2.3522, 35, "Europe/Paris", 2_148_000, 5.0, 20.6, 640, 110),
    ("Marseille", "Provence-Alpes-Cote d'Azur", "France", "FR", 43.2965, 5.3698, 12, "Europe/Paris", 870_000, 7.5, 24.5, 520, 55),
    ("Lyon", "Auvergne-Rhone-Alpes", "France", "FR", 45.764, 4.8357, 173, "Europe/Paris", 516_000, 3.5, 22.0, 830, 100),
    ("Berlin", "Berlin", "Germany", "DE", 52.52, 13.405, 34, "Europe/Berlin", 3_645_000, 0.6, 19.3, 570, 105),
    ("Munich", "Bavaria", "Germany", "DE", 48.1351, 11.582, 519, "Europe/Berlin", 1_472_000, -0.5, 18.7, 960, 125),
    ("Hamburg", "Hamburg", "Germany", "DE", 53.5511, 9.9937, 6, "Europe/Berlin", 1_841_000, 1.4, 18.0, 770, 130),
    ("Frankfurt", "Hesse", "Germany", "DE", 50.1109, 8.6821, 112, "Europe/Berlin", 753_000, 1.2, 19.8, 630, 110),
    ("Amsterdam", "North Holland", "Netherlands", "NL", 52.3676, 4.9041, -2, "Europe/Amsterdam", 872_000, 3.4, 17.6, 840, 130),
    ("Brussels", "Brussels-Capital", "Belgium", "BE", 50.8503, 4.3517, 13, "Europe/Brussels", 1_209_000, 3.3, 18.4, 850, 130),
    ("Zurich", "Zurich", "Switzerland", "CH", 47.3769, 8.5417, 408, "Europe/Zurich", 421_000, 0.3, 18.6, 1100, 130),
    ("Geneva", "Geneva", "Switzerland", "CH", 46.2044, 6.1432, 375, "Europe/Zurich", 203_000, 1.5, 20.2, 1000, 110),
    ("Vienna", "Vienna", "Austria", "AT", 48.2082, 16.3738, 151, "Europe/Vienna", 1_897_000, 0.3, 20.8, 650, 95),
    ("Prague", "Prague", "Czechia", "CZ", 50.0755, 14.4378, 235, "Europe/Prague", 1_309_000, -0.9, 18.9, 520, 90),
    ("Warsaw", "Masovia", "Poland", "PL", 52.2297, 21.0122, 100, "Europe/Warsaw", 1_790_000, -1.8, 19.3, 530, 100),
    ("Budapest", "Budapest", "Hungary", "HU", 47.4979, 19.0402, 102, "Europe/Budapest", 1_752_000, 0.4, 22.0, 560, 85),
    ("Copenhagen", "Capital Region", "Denmark", "DK", 55.6761, 12.5683, 14, "Europe/Copenhagen", 794_000, 1.4, 17.6, 610, 110),
    ("Stockholm", "Stockholm", "Sweden", "SE", 59.3293, 18.0686, 28, "Europe/Stockholm", 975_000, -1.0, 18.3, 540, 105),
    ("Oslo", "Oslo", "Norway", "NO", 59.9139, 10.7522, 23, "Europe/Oslo", 697_000, -2.3, 17.7, 790, 115),
    ("Helsinki", "Uusimaa", "Finland", "FI", 60.1699, 24.9384, 17, "Europe/Helsinki", 656_000, -3.9, 18.1, 650, 115),
    ("Reykjavik", "Capital Region", "Iceland", "IS", 64.1466, -21.9426, 15, "Atlantic/Reykjavik", 131_000, -0.5, 11.2, 850, 150),
    ("Madrid", "Community of Madrid", "Spain", "ES", 40.4168, -3.7038, 667, "Europe/Madrid", 3_223_000, 6.3, 25.6, 420, 60),
    ("Barcelona", "Catalonia", "Spain", "ES", 41.3874, 2.1686, 12, "Europe/Madrid", 1_620_000, 10.0, 24.5, 590, 55),
    ("Valencia", "Valencian Community", "Spain", "ES", 39.4699, -0.3763, 15, "Europe/Madrid", 791_000, 11.5, 25.6, 450, 45),
    ("Cordoba", "Andalusia", "Spain", "ES", 37.8882, -4.7794, 106, "Europe/Madrid", 325_000, 9.5, 28.0, 540, 50),
    ("Seville", "Andalusia", "Spain", "ES", 37.3891, -5.9845, 7, "Europe/Madrid", 688_000, 10.9, 28.2, 540, 50),
    ("Lisbon", "Lisbon", "Portugal", "PT", 38.7223, -9.1393, 45, "Europe/Lisbon", 545_000, 11.6, 23.3, 710, 70),
    ("Rome", "Lazio", "Italy", "IT", 41.9028, 12.4964, 21, "Europe/Rome", 2_873_000, 7.5, 24.9, 800, 70),
    ("Milan", "Lombardy", "Italy", "IT", 45.4642, 9.19, 120, "Europe/Rome", 1_352_000, 2.5, 23.8, 940, 80),
    ("Naples", "Campania", "Italy", "IT", 40.8518, 14.2681, 17, "Europe/Rome", 959_000, 9.0, 24.8, 1000, 90),
    ("Athens", "Attica", "Greece", "GR", 37.9838, 23.7275, 70, "Europe/Athens", 664_000, 10.2, 28.6, 400, 45),
    ("Istanbul", "Istanbul", "Turkey", "TR", 41.0082, 28.9784, 39, "Europe/Istanbul", 15_460_000, 6.1, 23.9, 820, 90),
    ("Ankara", "Ankara", "Turkey", "TR", 39.9334, 32.8597, 938, "Europe/Istanbul", 5_663_000, 0.3, 23.6, 400, 60),
    ("Bucharest", "Bucharest", "Romania", "RO", 44.4268, 26.1025, 70, "Europe/Bucharest", 1_830_000, -1.5, 22.8, 600, 80),
    ("Kyiv", "Kyiv City", "Ukraine", "UA", 50.4501, 30.5234, 179, "Europe/Kyiv", 2_952_000, -3.5, 20.5, 620, 105),
    ("Moscow", "Moscow", "Russia", "RU", 55.7558, 37.6173, 156, "Europe/Moscow", 12_506_000, -6.2, 19.2, 710, 120),
    ("Saint Petersburg", "Saint Petersburg", "Russia", "RU", 59.9311, 30.3609, 3, "Europe/Moscow", 5_384_000, -5.5, 18.8, 660, 125),
    ("Novosibirsk", "Novosibirsk Oblast", "Russia", "RU", 55.0084, 82.9357, 150, "Asia/Novosibirsk", 1_625_000, -16.5, 19.4, 430, 95),
    ("Cairo", "Cairo", "Egypt", "EG", 30.0444, 31.2357, 23, "Africa/Cairo", 9_540_000, 14.0, 28.5, 20, 3),
    ("Alexandria", "Alexandria", "Egypt", "EG", 31.2001, 29.9187, 5, "Africa/Cairo", 5_200_000, 13.6, 26.5, 190, 20),
    ("Alexandria", "Virginia", "United States", "US", 38.8048, -77.0469, 10, "America/New_York", 159_000, 2.4, 26.6, 1060, 115),
    ("Casablanca", "Casablanca-Settat", "Morocco", "MA", 33.5731, -7.5898, 27, "Africa/Casablanca", 3_360_000, 12.8, 22.4, 420, 50),
    ("Marrakesh", "Marrakesh-Safi", "Morocco", "MA", 31.6295, -7.9811, 466, "Africa/Casablanca", 929_000, 12.0, 29.0, 250, 35),
    ("Tunis", "Tunis", "Tunisia", "TN", 36.8065, 10.1815, 4, "Africa/Tunis", 638_000, 11.5, 27.4, 460, 55),
    ("Lagos", "Lagos", "Nigeria", "NG", 6.5244, 3.3792, 41, "Africa/Lagos", 15_300_000, 27.0, 25.5, 1700, 120),
    ("Accra", "Greater Accra", "Ghana", "GH", 5.6037, -0.187, 61, "Africa/Accra", 2_514_000, 27.3, 25.4, 790, 60),
    ("Dakar", "Dakar", "Senegal", "SN", 14.7167, -17.4677, 22, "Africa/Dakar", 1_146_000, 21.3, 27.2, 430, 30),
    ("Nairobi", "Nairobi", "Kenya", "KE", -1.2921, 36.8219, 1795, "Africa/Nairobi", 4_397_000, 19.5, 16.0, 870, 75),
    ("Addis Ababa", "Addis Ababa", "Ethiopia", "ET", 8.9806, 38.7578, 2355, "Africa/Addis_Ababa", 3_604_000, 16.0, 15.5, 1150, 120),
    ("Kinshasa", "Kinshasa", "DR Congo", "CD", -4.4419, 15.2663, 240, "Africa/Kinshasa", 14_970_000, 26.5, 22.9, 1480, 110),
    ("Johannesburg", "Gauteng", "South Africa", "ZA", -26.2041, 28.0473, 1753, "Africa/Johannesburg", 5_635_000, 20.4, 10.5, 710, 80),
    ("Cape Town", "Western Cape", "South Africa", "ZA", -33.9249, 18.4241, 25, "Africa/Johannesburg", 4_618_000, 21.5, 12.5, 520, 65),
    ("Dubai", "Dubai", "United Arab Emirates", "AE", 25.2048, 55.2708, 5, "Asia/Dubai", 3_331_000, 19.7, 35.6, 80, 5),
    ("Riyadh", "Riyadh", "Saudi Arabia", "SA", 24.7136, 46.6753, 612, "Asia/Riyadh", 7_676_000, 14.5, 36.6, 100, 10),
    ("Tehran", "Tehran", "Iran", "IR", 35.6892, 51.389, 1190, "Asia/Tehran", 8_694_000, 4.2, 30.5, 230, 30),
    ("Jerusalem", "Jerusalem", "Israel", "IL", 31.7683, 35.2137, 754, "Asia/Jerusalem", 936_000, 9.1, 24.2, 540, 40),
    ("Karachi", "Sindh", "Pakistan", "PK", 24.8607, 67.0011, 8, "Asia/Karachi", 14_910_000, 18.8, 30.9, 170, 8),
    ("Delhi", "Delhi", "India", "IN", 28.7041, 77.1025, 216, "Asia/Kolkata", 16_787_000, 14.2, 31.5, 770, 40),
    ("Mumbai", "Maharashtra", "India", "IN", 19.076, 72.8777, 14, "Asia/Kolkata", 12_442_000, 24.4, 27.6, 2200, 75),
    ("Bengaluru", "Karnataka", "India", "IN", 12.9716, 77.5946, 920, "Asia/Kolkata", 8_443_000, 21.5, 23.5, 970, 60),
    ("Kolkata", "West Bengal", "India", "IN", 22.5726, 88.3639, 9, "Asia/Kolkata", 4_497_000, 20.1, 29.5, 1580, 85),
    ("Dhaka", "Dhaka", "Bangladesh", "BD", 23.8103, 90.4125, 4, "Asia/Dhaka", 8_906_000, 18.9, 29.0, 2100, 110),
    ("Kathmandu", "Bagmati", "Nepal", "NP", 27.7172, 85.324, 1400, "Asia/Kathmandu", 1_442_000, 10.8, 24.2, 1400, 90),
    ("Bangkok", "Bangkok", "Thailand", "TH", 13.7563, 100.5018, 2, "Asia/Bangkok", 10_539_000, 27.0, 29.0, 1650, 110),
    ("Hanoi", "Hanoi", "Vietnam", "VN", 21.0278, 105.8342, 16, "Asia/Bangkok", 8_054_000, 16.4, 29.2, 1680, 115),
    ("Ho Chi Minh City", "Ho Chi Minh City", "Vietnam", "VN", 10.8231, 106.6297, 19, "Asia/Ho_Chi_Minh", 8_993_000, 26.0, 27.6, 1930, 120),
    ("Singapore", "", "Singapore", "SG", 1.3521, 103.8198, 15, "Asia/Singapore", 5_686_000, 26.5, 27.9, 2340, 165),
    ("Kuala Lumpur", "Kuala Lumpur", "Malaysia", "MY", 3.139, 101.6869, 56, "Asia/Kuala_Lumpur", 1_808_000, 27.2, 27.7, 2600, 180),
    ("Jakarta", "Jakarta", "Indonesia", "ID", -6.2088, 106.8456, 8, "Asia/Jakarta", 10_562_000, 26.9, 27.6, 1820, 130),
    ("Manila", "Metro Manila", "Philippines", "PH", 14.5995, 120.9842, 13, "Asia/Manila", 1_846_000, 26.1, 28.2, 2050, 125),
    ("Hong Kong", "", "Hong Kong", "HK", 22.3193, 114.1694, 32, "Asia/Hong_Kong", 7_482_000, 16.3, 28.9, 2400, 105),
    ("Taipei", "Taipei", "Taiwan", "TW", 25.033, 121.5654, 9, "Asia/Taipei", 2_646_000, 16.1, 29.6, 2400, 170),
    ("Shanghai", "Shanghai", "China", "CN", 31.2304, 121.4737, 4, "Asia/Shanghai", 24_870_000, 4.8, 28.6, 1160, 125),
    ("Beijing", "Beijing", "China", "CN", 39.9042, 116.4074, 44, "Asia/Shanghai", 21_540_000, -3.1, 27.0, 530, 65),
    ("Guangzhou", "Guangdong", "China", "CN", 23.1291, 113.2644, 21, "Asia/Shanghai", 15_300_000, 13.6, 28.9, 1720, 150),
    ("Chengdu", "Sichuan", "China", "CN", 30.5728, 104.0668, 500, "Asia/Shanghai", 16_330_000, 5.8, 25.9, 870, 115),
    ("Harbin", "Heilongjiang", "China", "CN", 45.8038, 126.5349, 142, "Asia/Shanghai", 10_010_000, -17.6, 23.0, 520, 90),
    ("Ulaanbaatar", "Ulaanbaatar", "Mongolia", "MN", 47.8864, 106.9057, 1350, "Asia/Ulaanbaatar", 1_466_000, -21.6, 18.2, 270, 45),
    ("Seoul", "Seoul", "South Korea", "KR", 37.5665, 126.978, 38, "Asia/Seoul", 9_776_000, -2.0, 25.7, 1450, 110),
    ("Tokyo", "Tokyo", "Japan", "JP", 35.6762, 139.6503, 40, "Asia/Tokyo", 13_960_000, 5.4, 25.8, 1530, 105),
    ("Osaka", "Osaka", "Japan", "JP", 34.6937, 135.5023, 12, "Asia/Tokyo", 2_691_000, 6.2, 27.7, 1280, 100),
    ("Sapporo", "Hokkaido", "Japan", "JP", 43.0618, 141.3545, 29, "Asia/Tokyo", 1_973_000, -3.2, 22.3, 1150, 140),
    ("Sydney", "New South Wales", "Australia", "AU", -33.8688, 151.2093, 58, "Australia/Sydney", 5_312_000, 23.5, 13.1, 1210, 100),
    ("Sydney", "Nova Scotia", "Canada", "CA", 46.1368, -60.1942, 20, "America/Glace_Bay", 30_000, -5.4, 18.3, 1500, 160),
    ("Melbourne", "Victoria", "Australia", "AU", -37.8136, 144.9631, 31, "Australia/Melbourne", 5_078_000, 21.2, 10.4, 650, 90),
    ("Brisbane", "Queensland", "Australia", "AU", -27.4698, 153.0251, 28, "Australia/Brisbane", 2_560_000, 25.8, 15.8, 1000, 80),
    ("Perth", "Western Australia", "Australia", "AU", -31.9505, 115.8605, 31, "Australia/Perth", 2_085_000, 24.5, 13.2, 730, 70),
    ("Darwin", "Northern Territory", "Australia", "AU", -12.4634, 130.8456, 30, "Australia/Darwin", 147_000, 28.6, 25.1, 1730, 95),
    ("Auckland", "Auckland", "New Zealand", "NZ", -36.8485, 174.7633, 26, "Pacific/Auckland", 1_657_000, 19.8, 11.0, 1210, 135),
    ("Wellington", "Wellington", "New Zealand", "NZ", -41.2865, 174.7762, 19, "Pacific/Auckland", 215_000, 17.0, 8.8, 1250, 125),
    ("Honolulu", "Hawaii", "United States", "US", 21.3069, -157.8583, 6, "Pacific/Honolulu", 350_000, 23.1, 27.2, 430, 45),
    ("Anchorage", "Alaska", "United States", "US", 61.2181, -149.9003, 31, "America/Anchorage", 291_000, -8.4, 15.1, 420, 100),
    ("Seattle", "Washington", "United States", "US", 47.6062, -122.3321, 53, "America/Los_Angeles", 737_000, 5.2, 19.1, 990, 150),
    ("Portland", "Oregon", "United States", "US", 45.5152, -122.6784, 15, "America/Los_Angeles", 652_000, 4.9, 21.1, 1090, 150),
    ("Portland", "Maine", "United States", "US", 43.6591, -70.2568, 19, "America/New_York", 68_000, -5.6, 20.6, 1200, 125),
    ("San Francisco", "California", "United States", "US", 37.7749, -122.4194, 16, "America/Los_Angeles", 815_000, 10.8, 15.3, 600, 65),
    ("Los Angeles", "California", "United States", "US", 34.0522, -118.2437, 89, "America/Los_Angeles", 3_899_000, 14.3, 23.9, 370, 35),
    ("San Diego", "California", "United States", "US", 32.7157, -117.1611, 19, "America/Los_Angeles", 1_387_000, 14.2, 21.7, 260, 40),
    ("Las Vegas", "Nevada", "United States", "US", 36.1699, -115.1398, 610, "America/Los_Angeles", 641_000, 8.4, 33.6, 110, 20),
    ("Phoenix", "Arizona", "United States", "US", 33.4484, -112.074, 331, "America/Phoenix", 1_608_000, 13.6, 35.4, 200, 30),
    ("Denver", "Colorado", "United States", "US", 39.7392, -104.9903, 1609, "America/Denver", 716_000, 0.1, 23.3, 370, 60),
    ("Salt Lake City", "Utah", "United States", "US", 40.7608, -111.891, 1288, "America/Denver", 200_000, -0.6, 27.0, 410, 80),
    ("Dallas", "Texas", "United States", "US", 32.7767, -96.797, 131, "America/Chicago", 1_304_000, 8.6, 30.3, 960, 80),
    ("Houston", "Texas", "United States", "US", 29.7604, -95.3698, 15, "America/Chicago", 2_304_000, 11.7, 29.2, 1270, 105),
    ("Paris", "Texas", "United States", "US", 33.6609, -95.5555, 180, "America/Chicago", 25_000, 5.8, 28.3, 1200, 85),
    ("Chicago", "Illinois", "United States", "US", 41.8781, -87.6298, 181, "America/Chicago", 2_697_000, -4.6, 23.3, 940, 125),
    ("Minneapolis", "Minnesota", "United States", "US", 44.9778, -93.265, 264, "America/Chicago", 429_000, -9.9, 23.2, 780, 115),
    ("New Orleans", "Louisiana", "United States", "US", 29.9511, -90.0715, 2, "America/Chicago", 384_000, 11.6, 28.4, 1600, 115),
    ("Atlanta", "Georgia", "United States", "US", 33.749, -84.388, 320, "America/New_York", 498_000, 7.3, 27.0, 1270, 115),
    ("Miami", "Florida", "United States", "US", 25.7617, -80.1918, 2, "America/New_York", 442_000, 20.1, 29.2, 1570, 135),
    ("Washington", "District of Columbia", "United States", "US", 38.9072, -77.0369, 22, "America/New_York", 690_000, 2.3, 26.6, 1050, 115),
    ("New York", "New York", "United States", "US", 40.7128, -74.006, 10, "America/New_York", 8_336_000, 0.5, 25.3, 1270, 120),
    ("Boston", "Massachusetts", "United States", "US", 42.3601, -71.0589, 43, "America/New_York", 675_000, -1.5, 23.1, 1110, 125),
    ("Cambridge", "Massachusetts", "United States", "US", 42.3736, -71.1097, 12, "America/New_York", 118_000, -1.7, 22.9, 1120, 125),
    ("Toronto", "Ontario", "Canada", "CA", 43.6532, -79.3832, 76, "America/Toronto", 2_794_000, -5.5, 22.3, 830, 140),
    ("London", "Ontario", "Canada", "CA", 42.9849, -81.2453, 251, "America/Toronto", 422_000, -5.6, 20.8, 990, 165),
    ("Montreal", "Quebec", "Canada", "CA", 45.5017, -73.5673, 36, "America/Toronto", 1_762_000, -9.7, 21.2, 1000, 160),
    ("Vancouver", "British Columbia", "Canada", "CA", 49.2827, -123.1207, 70, "America/Vancouver", 662_000, 4.1, 18.0, 1460, 165),
    ("Calgary", "Alberta", "Canada", "CA", 51.0447, -114.0719, 1045, "America/Edmonton", 1_306_000, -7.1, 16.5, 420, 75),
    ("Winnipeg", "Manitoba", "Canada", "CA", 49.8951, -97.1384, 239, "America/Winnipeg", 749_000, -16.4, 19.7, 520, 90),
    ("Mexico City", "Mexico City", "Mexico", "MX", 19.4326, -99.1332, 2240, "America/Mexico_City", 9_209_000, 14.0, 17.5, 820, 110),
    ("Cancun", "Quintana Roo", "Mexico", "MX", 21.1619, -86.8515, 10, "America/Cancun", 888_000, 23.5, 28.5, 1340, 100),
    ("Havana", "Havana", "Cuba", "CU", 23.1136, -82.3666, 59, "America/Havana", 2_130_000, 22.0, 27.8, 1200, 85),
    ("Panama City", "Panama", "Panama", "PA", 8.9824, -79.5199, 10, "America/Panama", 880_000, 27.3, 27.3, 1900, 130),
    ("Bogota", "Bogota", "Colombia", "CO", 4.711, -74.0721, 2640, "America/Bogota", 7_181_000, 13.5, 13.2, 800, 150),
    ("Caracas", "Capital District", "Venezuela", "VE", 10.4806, -66.9036, 900, "America/Caracas", 2_082_000, 21.0, 22.6, 900, 100),
    ("Valencia", "Carabobo", "Venezuela", "VE", 10.162, -68.0077, 479, "America/Caracas", 1_484_000, 25.0, 25.8, 1050, 90),
    ("Quito", "Pichincha", "Ecuador", "EC", -0.1807, -78.4678, 2850, "America/Guayaquil", 2_011_000, 14.0, 14.0, 1100, 140),
    ("Lima", "Lima", "Peru", "PE", -12.0464, -77.0428, 154, "America/Lima", 9_752_000, 22.8, 16.8, 15, 3),
    ("La Paz", "La Paz", "Bolivia", "BO", -16.4897, -68.1193, 3640, "America/La_Paz", 812_000, 9.0, 5.5, 560, 90),
    ("Santiago", "Santiago Metropolitan", "Chile", "CL", -33.4489, -70.6693, 570, "America/Santiago", 6_158_000, 21.0, 8.2, 310, 30),
    ("Buenos Aires", "Buenos Aires", "Argentina", "AR", -34.6037, -58.3816, 25, "America/Argentina/Buenos_Aires", 3_075_000, 24.9, 11.1, 1240, 95),
    ("Cordoba", "Cordoba", "Argentina", "AR", -31.4201, -64.1888, 390, "America/Argentina/Cordoba", 1_391_000, 24.0, 10.5, 800, 70),
    ("Montevideo", "Montevideo", "Uruguay", "UY", -34.9011, -56.1645, 43, "America/Montevideo", 1_319_000, 23.0, 10.9, 1100, 90),
    ("Sao Paulo", "Sao Paulo", "Brazil", "BR", -23.5505, -46.6333, 760, "America/Sao_Paulo", 12_330_000, 22.5, 16.0, 1450, 120),
    ("Rio de Janeiro", "Rio de Janeiro", "Brazil", "BR", -22.9068, -43.1729, 5, "America/Sao_Paulo", 6_748_000, 26.5, 21.3, 1280, 100),
    ("Brasilia", "Federal District", "Brazil", "BR", -15.7975, -47.8919, 1172, "America/Sao_Paulo", 3_055_000, 21.6, 19.4, 1480, 110),
    ("Manaus", "Amazonas", "Brazil", "BR", -3.119, -60.0217, 92, "America/Manaus", 2_220_000, 26.3, 27.0, 2300, 180),
)
# fmt: on

CITIES: tuple[City, ...] = tuple(City(*row) for row in _ROWS)
