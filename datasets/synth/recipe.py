"""The synthetic-scene recipe: every knob that sets the look of a scene, validated from YAML.

Sizes are in metres, temperatures in kelvin, reflectances are 0..1 in the order red, green, blue, nir.
Ranges are ``[low, high]`` pairs sampled uniformly unless a field says otherwise.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, model_validator

from minewatch.config import StrictModel, read_yaml, resolve_config, validate
from minewatch.errors import UserError


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise ValueError(f"range low {pair[0]} is above high {pair[1]}")
    return pair


def _number_as_range(value: Any) -> Any:
    """A single number x where a range is expected means [x, x] (recipes written before it was a range)."""
    return (value, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


Range = Annotated[tuple[float, float], AfterValidator(_ordered)]
SpreadRange = Annotated[tuple[float, float], BeforeValidator(_number_as_range), AfterValidator(_ordered)]
IntRange = Annotated[tuple[int, int], AfterValidator(_ordered)]
Weights = dict[str, Annotated[float, Field(ge=0)]]
Refl = tuple[float, float, float, float]

LOOKALIKE_KINDS: tuple[str, ...] = (
    "container_yard", "truck_depot", "hvac_warehouse", "greenhouse",
    "solar_farm", "car_park", "hot_industry", "dark_roof",
    "semi_trailer_rows", "bus_depot", "flat_roof_hvac", "rooftop_solar", "marina",
)
MINING_KINDS: tuple[str, ...] = ("container_farm", "warehouse_farm", "hidden_farm")
SEASONS: tuple[str, ...] = ("spring", "summer", "autumn", "winter")


class Material(StrictModel):
    """Look of one surface: colour in the optical bands and warmth in the sun."""

    reflectance: Refl = Field(description="reflectance in red, green, blue, nir (0..1)")
    jitter: float = Field(0.08, ge=0, le=0.5, description="relative spread of the reflectance between objects")
    solar_k: float = Field(0.0, description="surface excess over air temperature in full sun, K")


class Region(StrictModel):
    """A place where mining is plausible: sets the UTM zone, the season's sign and the landscape."""

    name: str = Field(description="label written to scene.json")
    lon: Range = Field(description="longitude range, degrees")
    lat: Range = Field(description="latitude range, degrees")
    weight: float = Field(1.0, ge=0, description="relative chance of picking this region")
    greenness: float = Field(1.0, ge=0, le=1.5, description="scales vegetation greenness (arid < 1)")
    forest: float = Field(1.0, ge=0, le=2, description="scales forest cover")
    snow_probability: float = Field(0.0, ge=0, le=1, description="chance of snow cover in winter")


class SceneSpec(StrictModel):
    """Where and when a scene is, and how large."""

    profile: str = Field("drone", description="sensor profile used when none is given")
    size_px: int = Field(2048, ge=64, le=16384, description="optical width = height in pixels (2048 @ 0.2 m ~ 410 m)")
    extent_m: float | None = Field(None, gt=0, description="scene side in metres instead of size_px: the pixel count "
                                   "follows from the scene's pixel size (a sensor look that draws it per scene)")
    regions: list[Region] = Field(min_length=1, description="places to draw the scene location from")
    date_start: dt.date = Field(description="first possible acquisition date")
    date_end: dt.date = Field(description="last possible acquisition date")
    local_solar_time_h: Range = Field((9.5, 15.5), description="local solar time of the acquisition, hours")
    min_sun_elevation_deg: float = Field(22.0, ge=1, le=60, description="re-draw the time below this sun height")
    nodata_collar_probability: float = Field(0.2, ge=0, le=1, description="chance of a nodata collar")
    collar_fraction: Range = Field((0.03, 0.12), description="collar width as a fraction of the scene side")


class Placement(StrictModel):
    """How many things go into a scene and how they keep apart."""

    reference_area_km2: float = Field(0.168, gt=0, description="area the counts are given for (2048 px drone)")
    max_count_scale: float = Field(4.0, gt=0, description="cap on count scaling for large scenes")
    min_mining: int = Field(1, ge=0, description="at least this many mining sites, if they fit")
    min_lookalikes: int = Field(1, ge=0, description="at least this many look-alikes, if they fit")
    spacing_m: float = Field(12.0, ge=0, description="clear gap between site footprints")
    edge_margin_m: float = Field(4.0, ge=0, description="gap between a site and the scene edge")
    max_extent_fraction: float = Field(0.45, gt=0, le=1, description="largest site side / scene side")
    tries: int = Field(60, ge=1, description="random positions tried per site before shrinking it")
    access_track_probability: float = Field(0.7, ge=0, le=1, description="chance of a dirt track to a road")


class Season(StrictModel):
    """Vegetation state and air temperature of a season."""

    greenness: Range = Field(description="0 = dry/brown vegetation, 1 = lush green")
    air_temperature_k: Range = Field(description="near-surface air temperature, K")
    weight: float = Field(1.0, ge=0, description="relative chance of the season")


class Landcover(StrictModel):
    """Procedural background: parcels, forest, water, roads, villages, trees."""

    seasons: dict[str, Season] = Field(description="spring, summer, autumn, winter")
    parcel_width_m: Range = Field((25.0, 110.0), description="field strip width")
    parcel_length_m: Range = Field((40.0, 260.0), description="field length along the strip")
    parcel_margin_m: Range = Field((0.5, 2.5), description="grass margin between fields")
    parcel_weights: Weights = Field(description="share of crop, ripe, ploughed, grass, bare parcels")
    row_period_m: Range = Field((0.6, 2.5), description="crop-row / furrow spacing")
    row_amplitude: Range = Field((0.03, 0.18), description="relative brightness swing of rows")
    tramline_spacing_m: Range = Field((12.0, 24.0), description="tractor tramline spacing")
    forest_cover: Range = Field((0.0, 0.35), description="forest share of the scene (times region.forest)")
    water_probability: float = Field(0.35, ge=0, le=1, description="chance of ponds or a lake")
    water_cover: Range = Field((0.02, 0.10), description="water share when present")
    roads: IntRange = Field((1, 3), description="roads crossing the scene")
    road_width_m: Range = Field((4.5, 8.0), description="paved road width")
    track_width_m: Range = Field((2.8, 4.5), description="dirt track width")
    asphalt_probability: float = Field(0.6, ge=0, le=1, description="chance a road is paved")
    village_probability: float = Field(0.5, ge=0, le=1, description="chance of a village along a road")
    houses: IntRange = Field((4, 16), description="houses in a village")
    house_length_m: Range = Field((8.0, 15.0), description="house length")
    house_width_m: Range = Field((6.0, 10.0), description="house width")
    house_height_m: Range = Field((4.0, 8.0), description="ridge height")
    house_roofs: Weights = Field(description="roof materials of houses")
    hedgerow_probability: float = Field(0.35, ge=0, le=1, description="chance a field edge carries trees")
    scattered_trees: IntRange = Field((5, 40), description="lone trees per reference area")
    tree_spacing_m: Range = Field((4.0, 9.0), description="spacing of hedgerow trees")
    tree_radius_m: Range = Field((1.8, 4.5), description="crown radius")
    tree_height_m: Range = Field((6.0, 18.0), description="tree height (shadow length)")
    crown_size_m: float = Field(3.0, gt=0, description="forest canopy texture scale")
    mottle_amplitude: float = Field(0.12, ge=0, description="relative low-frequency brightness variation")
    grain_amplitude: float = Field(0.05, ge=0, description="relative fine-grain texture")
    thermal_mottle_k: float = Field(1.2, ge=0, description="low-frequency surface temperature variation, K")


class MiningHeat(StrictModel):
    """Heat of running mining equipment at full load (scaled by the site's load), K over air."""

    load: Range = Field((0.6, 1.0), description="fraction of full power a running site draws")
    roof_k: Range = Field((4.0, 12.0), description="container / hall roof excess")
    exhaust_k: Range = Field((10.0, 24.0), description="hot-aisle ground and hoods at the exhaust end")
    fan_k: Range = Field((14.0, 30.0), description="fan outlets")
    plume_k: Range = Field((2.0, 7.0), description="warm air plume core, downwind")
    plume_length_m: Range = Field((10.0, 40.0), description="e-folding length of the plume")
    plume_width_m: Range = Field((2.0, 6.0), description="plume half-width at the source")
    transformer_k: Range = Field((4.0, 12.0), description="loaded transformer excess")
    evaporative_k: Range = Field((-7.0, -2.0), description="wet cooling pads (evaporation cools)")


class ContainerFarmSpec(StrictModel):
    """Containers in regular rows with aisles, fans at the exhaust ends, cooling walls, a substation.

    Sizes, rows, fan positions and heat are physical; paint spread, odd boxes and roof units are drawn per
    farm from the ranges here, wear and contrast from the recipe's ``appearance``."""

    n_containers: IntRange = Field((5, 100), description="containers per site (log-uniform)")
    forty_ft_probability: float = Field(0.75, ge=0, le=1, description="40 ft (12.19 m) else 20 ft (6.06 m)")
    mixed_length_probability: float = Field(
        0.2, ge=0, le=1, description="chance a farm mixes 20 ft and 40 ft rows (each row drawn on its own)")
    high_cube_probability: float = Field(0.4, ge=0, le=1, description="2.90 m tall instead of 2.59 m")
    per_block: IntRange = Field((3, 14), description="containers side by side in one block")
    side_gap_m: Range = Field((0.3, 2.5), description="gap between neighbouring containers")
    aisle_m: Range = Field((4.0, 9.0), description="aisle between blocks")
    colours: Weights = Field(description="site paint (one per farm; odd containers draw their own)")
    odd_colour_probability: SpreadRange = Field(
        (0.0, 0.2), description="per farm: chance one container has another paint (second-hand boxes)")
    colour_jitter: SpreadRange = Field((0.02, 0.1), description="per farm: container-to-container paint spread")
    roof_unit_probability: float = Field(0.3, ge=0, le=1, description="chance a farm has roof AC boxes")
    roof_unit_share: Range = Field((0.1, 0.6), description="then the share of its containers with one")
    fans_per_container: IntRange = Field((2, 3), description="fans across a container end")
    fan_diameter_m: Range = Field((0.8, 1.2), description="fan diameter")
    fan_styles: Weights = Field(description="roof: fans on the roof at the end; hood: exhaust hood on the end")
    cooling_wall_probability: float = Field(0.6, ge=0, le=1, description="chance of evaporative walls")
    cooling_wall_depth_m: Range = Field((0.9, 1.5), description="depth of the evaporative wall box")
    substation_probability: float = Field(0.9, ge=0, le=1, description="chance of a substation beside")
    transformers: IntRange = Field((1, 4), description="transformers in the substation")
    pad_margin_m: Range = Field((2.5, 6.0), description="gravel pad around the site")


class WarehouseFarmSpec(StrictModel):
    """A hall with rooftop fan arrays and evaporative walls."""

    length_m: Range = Field((25.0, 70.0), description="hall length")
    width_m: Range = Field((12.0, 28.0), description="hall width")
    height_m: Range = Field((5.0, 10.0), description="hall height")
    roofs: Weights = Field(description="roof materials")
    fan_rows: IntRange = Field((1, 3), description="fan rows along the roof")
    fan_spacing_m: Range = Field((1.6, 3.0), description="fan pitch along a row")
    fan_diameter_m: Range = Field((1.0, 1.5), description="fan diameter")
    cooling_wall_probability: float = Field(0.7, ge=0, le=1, description="chance of an evaporative wall")
    substation_probability: float = Field(0.85, ge=0, le=1, description="chance of a substation beside")


class HiddenFarmSpec(StrictModel):
    """A shed or house that is only warm: no containers, few fans, heat is the only clue."""

    length_m: Range = Field((6.0, 16.0), description="building length")
    width_m: Range = Field((5.0, 10.0), description="building width")
    height_m: Range = Field((3.0, 7.0), description="building height")
    roofs: Weights = Field(description="roof materials")
    roof_k: Range = Field((7.0, 16.0), description="roof excess when running")
    vents: IntRange = Field((0, 3), description="small roof vents / fans")


class MiningSpec(StrictModel):
    """Mining sites: counts, kinds, running share and their heat."""

    count: IntRange = Field((2, 4), description="sites per reference area")
    kind_weights: Weights = Field(description="container_farm, warehouse_farm, hidden_farm")
    running_probability: float = Field(0.8, ge=0, le=1, description="share of running sites (hidden: always)")
    heat: MiningHeat = Field(description="heat of running equipment")
    container_farm: ContainerFarmSpec = Field(description="containers in rows")
    warehouse_farm: WarehouseFarmSpec = Field(description="hall with roof fan arrays")
    hidden_farm: HiddenFarmSpec = Field(description="shed or house that is only warm")


class ContainerYardSpec(StrictModel):
    """Port or storage yard: stacked, multi-coloured, cold containers packed tight."""

    length_m: Range = Field((35.0, 95.0), description="yard length")
    width_m: Range = Field((25.0, 65.0), description="yard width")
    max_tiers: IntRange = Field((2, 5), description="highest stack")
    fill: Range = Field((0.6, 0.95), description="share of occupied slots")
    colours: Weights = Field(description="container colours (mixed in one yard)")


class TruckDepotSpec(StrictModel):
    """Trailers (13.6 m) parked in bays, with tractors; trailers look like containers but are not."""

    length_m: Range = Field((40.0, 100.0), description="lot length")
    width_m: Range = Field((30.0, 60.0), description="lot width")
    fill: Range = Field((0.4, 0.9), description="share of occupied bays")
    colours: Weights = Field(description="trailer colours")


class WarehouseSpec(StrictModel):
    """Logistics hall with a few small HVAC boxes on the roof."""

    length_m: Range = Field((40.0, 120.0), description="hall length")
    width_m: Range = Field((25.0, 70.0), description="hall width")
    height_m: Range = Field((7.0, 14.0), description="hall height")
    roofs: Weights = Field(description="roof materials")
    hvac_units: IntRange = Field((2, 10), description="rooftop HVAC boxes")
    hvac_k: Range = Field((3.0, 9.0), description="HVAC box excess")


class GreenhouseSpec(StrictModel):
    """Heated glasshouse: warm over a large, uniform area without hot spots."""

    length_m: Range = Field((30.0, 100.0), description="length")
    width_m: Range = Field((20.0, 60.0), description="width")
    ridge_m: Range = Field((3.2, 4.8), description="ridge spacing of the glass roof")
    heat_k: Range = Field((4.0, 10.0), description="glass excess (heated inside)")


class SolarFarmSpec(StrictModel):
    """Rows of dark panel tables on grass."""

    length_m: Range = Field((40.0, 130.0), description="array length")
    width_m: Range = Field((30.0, 90.0), description="array width")
    table_depth_m: Range = Field((2.0, 4.5), description="panel table depth")
    pitch_m: Range = Field((4.5, 8.0), description="row pitch")
    table_length_m: Range = Field((15.0, 40.0), description="length of one table")


class CarParkSpec(StrictModel):
    """Asphalt with painted bays and multi-coloured cars."""

    length_m: Range = Field((25.0, 80.0), description="lot length")
    width_m: Range = Field((18.0, 50.0), description="lot width")
    occupancy: Range = Field((0.3, 0.9), description="share of occupied bays")
    colours: Weights = Field(description="car colours")


class HotIndustrySpec(StrictModel):
    """Stacks and furnaces: small and very hot, no containers."""

    buildings: IntRange = Field((1, 3), description="plant buildings")
    building_m: Range = Field((12.0, 45.0), description="building side")
    roofs: Weights = Field(description="roof materials")
    stacks: IntRange = Field((1, 3), description="stacks")
    stack_diameter_m: Range = Field((1.5, 5.0), description="stack diameter")
    stack_height_m: Range = Field((15.0, 50.0), description="stack height")
    stack_k: Range = Field((60.0, 300.0), description="stack-top excess")
    furnace_k: Range = Field((20.0, 80.0), description="furnace vent excess")


class DarkRoofSpec(StrictModel):
    """Black flat roof that the sun heats: warm in the day, no equipment."""

    length_m: Range = Field((15.0, 60.0), description="building length")
    width_m: Range = Field((10.0, 40.0), description="building width")
    height_m: Range = Field((4.0, 10.0), description="building height")


class SemiTrailerSpec(StrictModel):
    """Semi-trailers (13.6 m) side by side in rows, often back to back, some with tractors or a container
    on a chassis: rows as regular as a container farm's, but cold and without fans."""

    length_m: Range = Field((40.0, 110.0), description="yard length")
    width_m: Range = Field((32.0, 80.0), description="yard width")
    pitch_m: Range = Field((3.2, 4.2), description="side-by-side spacing of trailers")
    fill: Range = Field((0.5, 0.95), description="share of occupied slots")
    tractor_probability: float = Field(0.25, ge=0, le=1, description="chance a trailer has its tractor")
    chassis_container_probability: float = Field(0.2, ge=0, le=1, description="chance a slot holds a container "
                                                 "on a chassis")
    colours: Weights = Field(description="trailer roof colours")
    container_colours: Weights = Field(description="colours of containers on chassis")


class BusDepotSpec(StrictModel):
    """Buses (12 m, articulated 18 m) parked in bays, with roof AC units, often beside a depot hall."""

    length_m: Range = Field((40.0, 100.0), description="yard length")
    width_m: Range = Field((30.0, 70.0), description="yard width")
    fill: Range = Field((0.5, 0.95), description="share of occupied bays")
    articulated_probability: float = Field(0.3, ge=0, le=1, description="chance a bus is 18 m articulated")
    roof_ac_probability: float = Field(0.85, ge=0, le=1, description="chance a bus carries a roof AC unit")
    hall_probability: float = Field(0.5, ge=0, le=1, description="chance of a depot hall beside the yard")
    colours: Weights = Field(description="bus roof colours (one fleet colour per depot, some odd buses)")


class FlatRoofHvacSpec(StrictModel):
    """A flat roof with rooftop plant: chillers with rows of fans, condensing units, ducts and vents.
    The look-alike most often taken for a cooling array: irregular, mixed sizes, mildly warm."""

    length_m: Range = Field((25.0, 90.0), description="building length")
    width_m: Range = Field((18.0, 60.0), description="building width")
    height_m: Range = Field((4.0, 20.0), description="building height")
    roofs: Weights = Field(description="roof materials")
    chillers: IntRange = Field((0, 3), description="packaged chillers (a box with 2 x n fans on top)")
    chiller_fans: IntRange = Field((2, 6), description="fans along one side of a chiller")
    condensers: IntRange = Field((2, 14), description="small condensing units with one or two fans")
    ducts: IntRange = Field((0, 5), description="ducts across the roof")
    vents: IntRange = Field((0, 10), description="small exhaust fans and vents")
    hvac_k: Range = Field((3.0, 12.0), description="excess of working fan outlets")


class RooftopSolarSpec(StrictModel):
    """A building whose roof carries rows of solar panels (tilted rows on a flat roof, flush on a pitched one)."""

    length_m: Range = Field((15.0, 80.0), description="building length")
    width_m: Range = Field((12.0, 50.0), description="building width")
    height_m: Range = Field((4.0, 15.0), description="building height")
    roofs: Weights = Field(description="roof materials")
    coverage: Range = Field((0.35, 0.85), description="share of the roof length and width the array covers")
    row_pitch_m: Range = Field((1.4, 2.6), description="pitch of tilted rows on a flat roof")
    panel_depth_m: Range = Field((0.9, 1.7), description="projected depth of a tilted row")
    pitched_probability: float = Field(0.35, ge=0, le=1, description="chance of a pitched roof, panels flush")


class MarinaSpec(StrictModel):
    """Pontoons with finger berths and moored boats at a shoreline (needs water in the scene)."""

    pontoons: IntRange = Field((1, 4), description="main pontoons out from the quay")
    pontoon_length_m: Range = Field((15.0, 60.0), description="pontoon length over the water")
    pontoon_width_m: Range = Field((1.8, 3.0), description="pontoon width")
    pontoon_spacing_m: Range = Field((18.0, 30.0), description="spacing between pontoons")
    finger_length_m: Range = Field((5.0, 11.0), description="finger berth length")
    berth_m: Range = Field((3.0, 5.0), description="berth width")
    occupancy: Range = Field((0.3, 0.9), description="share of occupied berths")
    boat_length_m: Range = Field((4.0, 13.0), description="boat length")
    quay_m: Range = Field((6.0, 16.0), description="depth of the quay (on land)")
    boat_colours: Weights = Field(description="hull and deck colours")


class LookalikeSpec(StrictModel):
    """Things an analyst must not be sent to."""

    count: IntRange = Field((2, 4), description="look-alikes per reference area")
    kind_weights: Weights = Field(description="relative chance of each kind")
    container_yard: ContainerYardSpec = Field(description="port / storage yard")
    truck_depot: TruckDepotSpec = Field(description="trailer park")
    hvac_warehouse: WarehouseSpec = Field(description="warehouse with small HVAC units")
    greenhouse: GreenhouseSpec = Field(description="heated glasshouse")
    solar_farm: SolarFarmSpec = Field(description="panel arrays")
    car_park: CarParkSpec = Field(description="cars on asphalt")
    hot_industry: HotIndustrySpec = Field(description="stacks and furnaces")
    dark_roof: DarkRoofSpec = Field(description="sun-heated black roof")
    semi_trailer_rows: SemiTrailerSpec = Field(description="semi-trailers in rows")
    bus_depot: BusDepotSpec = Field(description="buses in bays")
    flat_roof_hvac: FlatRoofHvacSpec = Field(description="flat roof with rooftop plant")
    rooftop_solar: RooftopSolarSpec = Field(description="solar panels on a roof")
    marina: MarinaSpec = Field(description="pontoons and boats at a shoreline")


class Appearance(StrictModel):
    """Randomised look of corrugated steel, fans and evaporative pads, drawn per site (each range is
    drawn once per site): what a model should not rely on. Sizes, layouts and heat stay physical."""

    rib_contrast: Range = Field((0.03, 0.16), description="brightness swing of roof corrugation")
    rust_probability: float = Field(0.45, ge=0, le=1, description="chance a site's steel is rusty at all")
    rust: Range = Field((0.05, 0.5), description="then the most rust on one roof (share of its area)")
    rust_colour: Refl = Field((0.30, 0.15, 0.08, 0.32), description="rust reflectance")
    dirt: Range = Field((0.0, 0.6), description="strength of dark dirt streaks along the corrugation")
    fan_contrast: Range = Field((0.4, 1.3), description="contrast of fan guards, blades and hubs")
    fan_colours: Weights = Field({"fan": 1.0}, description="fan colours (one per site)")
    fan_housings: Weights = Field({"hood": 1.0}, description="exhaust hood / fan housing colours (one per site)")
    pad_colours: Weights = Field({"pad_dry": 1.0}, description="evaporative pad colours, dry (one per site; "
                                 "a running pad is wet and darker)")
    pad_slat_m: Range = Field((0.15, 0.45), description="slat period of evaporative pads")
    pad_contrast: Range = Field((0.4, 1.6), description="slat contrast of evaporative pads")
    wet_darkening: float = Field(0.45, ge=0, le=1, description="reflectance share kept by a wet pad")


class Illumination(StrictModel):
    """Sun, shadows and shading."""

    shadow_light: Refl = Field(description="share of light left in shadow per band (skylight is blue)")
    shadow_cooling: float = Field(0.7, ge=0, le=1, description="share of solar warming lost in shadow")
    roof_shading: float = Field(0.25, ge=0, le=1, description="brightness difference of gable roof faces")
    tree_relief: float = Field(0.6, ge=0, description="strength of crown self-shading")


class Atmosphere(StrictModel):
    """Haze and clouds."""

    haze: Range = Field((0.0, 0.05), description="path radiance added (reflectance units)")
    haze_colour: Refl = Field(description="relative haze per band (blue scatters most)")
    cloud_probability: float = Field(0.25, ge=0, le=1, description="chance of (broken) clouds")
    cloud_cover: Range = Field((0.05, 0.35), description="cloud share when cloudy")
    cloud_scale_m: Range = Field((80.0, 300.0), description="size of cloud cells")
    cloud_height_m: Range = Field((600.0, 2500.0), description="cloud base (sets the shadow offset)")
    cloud_shadow_light: Range = Field((0.35, 0.6), description="share of light under a cloud shadow")
    cloud_reflectance: Range = Field((0.55, 0.85), description="cloud top brightness")
    cloud_temperature_k: Range = Field((235.0, 265.0), description="cloud top temperature")


class SensorLook(StrictModel):
    """How a sensor renders the scene: tone, blur, noise, thermal sampling."""

    gamma: float = Field(1.0, gt=0, description="display gamma (drone JPEG-like ortho 2.2, satellite 1)")
    exposure: Range = Field((1.0, 1.0), description="gain applied before the gamma")
    blur: float = Field(0.15, ge=0, le=0.33, description="optical blur: side weight of a 3-tap kernel")
    noise: float = Field(0.008, ge=0, description="sensor noise std in reflectance units")
    clouds_in_view: bool = Field(False, description="clouds appear in the image (satellite) or only their shadows")
    thermal_netd_k: float = Field(0.08, ge=0, description="thermal noise-equivalent temperature difference, K")
    thermal_supersample: int = Field(2, ge=1, le=8, description="fine thermal cells per footprint")
    thermal_max_sim_gsd_m: float = Field(2.0, gt=0, description="coarsest fine thermal cell, m")
    # Satellite effects (all off by default, so other looks render exactly as before; drawn per scene from a
    # random stream of their own).
    gsd_m: Range | None = Field(None, description="optical pixel size drawn per scene, m (VHR satellite products "
                                "0.3-1 m); None: the sensor profile's")
    view_angle_deg: Range = Field((0.0, 0.0), description="off-nadir view angle drawn per scene: roofs and tree "
                                  "crowns lean away from the sensor by height x tan(angle), the walls facing it show")
    wall_light: float = Field(0.6, ge=0, le=1.5, description="brightness of a visible wall relative to its roof")
    pansharpen: Range = Field((0.0, 0.0), description="pansharpening ringing drawn per scene: overshoot at edges "
                              "(unsharp-mask amount; 0 = none)")
    pansharpen_sigma_px: Range = Field((1.0, 1.5), description="width of the ringing, optical pixels")
    quant_bits: IntRange | None = Field(None, description="radiometric depth drawn per scene (11-12 bits for VHR "
                                        "satellites): reflectance quantised to that many bits of full scale")
    over_backgrounds: bool = Field(False, description="apply haze, blur, pansharpening, noise and quantisation to "
                                   "real backgrounds too (a satellite sees them through its own optics; a drone "
                                   "orthophoto is used as it is)")

    @property
    def satellite_effects(self) -> bool:
        """Any of the satellite effects is on."""
        return (self.gsd_m is not None or self.view_angle_deg[1] > 0 or self.pansharpen[1] > 0
                or self.quant_bits is not None or self.over_backgrounds)


class WaterDetection(StrictModel):
    """Water on a real background: dark, smooth, bluish or grey, in large clean patches (a heuristic)."""

    analysis_m: float = Field(1.0, gt=0, description="grid the detection works on (coarser for large scenes)")
    max_brightness: float = Field(0.28, gt=0, le=1, description="highest mean display brightness (0..1)")
    max_texture: float = Field(0.03, gt=0, description="highest local std of display brightness")
    texture_window_m: float = Field(5.0, gt=0, description="window of that local std")
    max_saturation: float = Field(0.18, gt=0, le=1, description="highest saturation of non-bluish water")
    max_brightness_cyan: float = Field(0.6, gt=0, le=1, description="highest brightness of turquoise water")
    min_cyan: float = Field(0.06, ge=0, le=1, description="turquoise: green and blue this far above red (display)")
    min_area_m2: float = Field(150.0, ge=0, description="smaller patches are not water (shadows, dark roofs)")
    min_width_m: float = Field(16.0, ge=0, description="water is this wide somewhere (building shadows are narrower)")
    clean_m: float = Field(3.0, ge=0, description="radius of the morphological opening and closing")
    margin_m: float = Field(2.0, ge=0, description="sites and look-alikes keep this far from detected water")


class BackgroundEntry(StrictModel):
    """A background file or folder with its own pixel size (for images without georeferencing)."""

    path: Path = Field(description="GeoTIFF, PNG or JPEG file, or a folder of them (relative to the recipe)")
    gsd_m: float | None = Field(None, gt=0, description="pixel size (m) of its images without georeferencing")


class Paste(StrictModel):
    """How sites and look-alikes are pasted on real backgrounds (``backgrounds``)."""

    min_extent_m: float = Field(192.0, ge=32, description="smaller backgrounds are mirrored up to this side "
                                "(3 x 3 model windows of 64 m)")
    tone_jitter: Range = Field((0.85, 1.15), description="per-site brightness factor over the matched tone")
    cast_jitter: float = Field(0.04, ge=0, le=0.3, description="per-site, per-band colour-cast spread")
    water: WaterDetection = Field(default_factory=WaterDetection, description="water detection")


class SynthRecipe(StrictModel):
    """Everything that sets the look of a synthetic scene."""

    version: int = Field(1, description="recipe schema version")
    scene: SceneSpec = Field(description="where, when, how large")
    placement: Placement = Field(default_factory=Placement, description="counts and spacing")
    landcover: Landcover = Field(description="procedural background")
    mining: MiningSpec = Field(description="mining sites")
    lookalikes: LookalikeSpec = Field(description="things that look like mining sites")
    appearance: Appearance = Field(default_factory=Appearance, description="randomised looks of steel, "
                                   "fans and pads")
    illumination: Illumination = Field(description="sun and shadows")
    atmosphere: Atmosphere = Field(description="haze and clouds")
    sensors: dict[str, SensorLook] = Field(description="per-profile look; key 'default' for other profiles")
    materials: dict[str, Material] = Field(description="named surfaces used by land cover and objects")
    backgrounds: list[Path | BackgroundEntry] = Field(
        default_factory=list, description="real orthophotos to paste sites on: GeoTIFF, PNG or JPEG files or "
        "folders of them, relative to the recipe file; an entry {path, gsd_m} gives its own pixel size")
    background_gsd_m: float | None = Field(None, gt=0, description="pixel size (m) of PNG/JPEG backgrounds "
                                           "without georeferencing")
    paste: Paste = Field(default_factory=Paste, description="how sites are pasted on real backgrounds")

    @model_validator(mode="after")
    def _check_names(self) -> SynthRecipe:
        missing = sorted(required_materials(self) - set(self.materials))
        if missing:
            raise ValueError(f"materials missing: {', '.join(missing)}")
        unknown = set(self.mining.kind_weights) - set(MINING_KINDS)
        unknown |= set(self.lookalikes.kind_weights) - set(LOOKALIKE_KINDS)
        unknown |= set(self.landcover.seasons) - set(SEASONS)
        if unknown:
            raise ValueError(f"unknown kinds or seasons: {', '.join(sorted(unknown))}")
        if "default" not in self.sensors:
            raise ValueError("sensors needs a 'default' entry")
        return self

    def sensor(self, profile_name: str) -> SensorLook:
        """The look of a profile, falling back to 'default'."""
        return self.sensors.get(profile_name, self.sensors["default"])


# Materials the code refers to by name (plus every name used in a weights table).
FIXED_MATERIALS: tuple[str, ...] = (
    "grass_green", "grass_dry", "crop_green", "crop_dry", "ploughed", "bare_soil", "forest_green",
    "forest_dry", "water", "asphalt", "dirt", "gravel", "concrete", "snow", "tree", "garden",
    "fan", "hood", "pad_wet", "pad_dry", "transformer", "fence", "glass", "solar_panel", "stack",
    "hvac", "paint", "tractor", "road_marking", "tar_roof", "chassis", "duct", "pontoon",
)


def required_materials(recipe: SynthRecipe) -> set[str]:
    names = set(FIXED_MATERIALS)
    cf = recipe.mining.container_farm
    names |= set(cf.colours) | set(recipe.mining.warehouse_farm.roofs) | set(recipe.mining.hidden_farm.roofs)
    la = recipe.lookalikes
    names |= set(la.container_yard.colours) | set(la.truck_depot.colours) | set(la.hvac_warehouse.roofs)
    names |= set(la.car_park.colours) | set(la.hot_industry.roofs) | set(recipe.landcover.house_roofs)
    names |= set(la.semi_trailer_rows.colours) | set(la.semi_trailer_rows.container_colours)
    names |= set(la.bus_depot.colours) | set(la.flat_roof_hvac.roofs) | set(la.rooftop_solar.roofs)
    names |= set(la.marina.boat_colours)
    ap = recipe.appearance
    names |= set(ap.fan_colours) | set(ap.fan_housings) | set(ap.pad_colours)
    return names


def _model_of(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _merge(base: Any, over: Any, model: type[BaseModel] | None) -> Any:
    """Overlay ``over`` on ``base``: sections (models) merge key by key, recipes' named collections of
    sections (materials, sensors, seasons) merge per name, everything else (numbers, ranges, lists,
    weights tables) is replaced whole."""
    if model is None or not isinstance(base, dict) or not isinstance(over, dict):
        return over
    out = dict(base)
    for key, value in over.items():
        field = model.model_fields.get(key)
        if field is None or key not in out:
            out[key] = value
            continue
        sub = _model_of(field.annotation)
        args = get_args(field.annotation)
        if sub is None and get_origin(field.annotation) is dict and len(args) == 2 and _model_of(args[1]):
            item = _model_of(args[1])
            merged = dict(out[key]) if isinstance(out[key], dict) else {}
            for name, v in (value or {}).items():
                merged[name] = _merge(merged.get(name), v, item) if name in merged else v
            out[key] = merged
        else:
            out[key] = _merge(out[key], value, sub)
    return out


def load_recipe(recipe: str | Path | None = None) -> SynthRecipe:
    """A recipe by built-in name (``default``, ``small``) or YAML path; None means ``default``.

    A recipe may start with ``extends: <name or path>`` and give only the keys it changes: sections
    merge key by key; values, ranges, lists and weights tables replace the base's whole.
    """
    path = resolve_config(recipe or "default", "synth")
    data = _read_recipe(path)
    seen = {Path(path).resolve()}
    while "extends" in data:
        base_path = resolve_config(data.pop("extends"), "synth")
        if Path(base_path).resolve() in seen:
            raise UserError("recipes extend each other in a loop", path=path, fix="remove one 'extends'")
        seen.add(Path(base_path).resolve())
        data = _merge(_read_recipe(base_path), data, SynthRecipe)
    return validate(data, SynthRecipe, source=path)


def _read_recipe(path: str | Path) -> dict[str, Any]:
    """A recipe file's mapping, its ``backgrounds`` made absolute (relative to the file)."""
    data = read_yaml(path)
    bgs = data.get("backgrounds")
    if isinstance(bgs, (str, Path)):
        bgs = [bgs]
    if isinstance(bgs, list):
        base = Path(path).resolve().parent
        data["backgrounds"] = [_absolute(b, base) for b in bgs]
    return data


def _absolute(entry: Any, base: Path) -> Any:
    if isinstance(entry, (str, Path)):
        return str(base / Path(entry).expanduser())
    if isinstance(entry, dict) and isinstance(entry.get("path"), (str, Path)):
        return {**entry, "path": str(base / Path(entry["path"]).expanduser())}
    return entry  # validation reports what is wrong with it
