-- 015_rubric_criteria: rubrics as lists of criteria, scored one by one.
-- An assignment's rubric is either free text (assignment.rubric, as before) or a list of
-- criteria (assignment.rubric_criteria: a JSON array of {id, description, points, checks?},
-- validated by sm_rubric_parse; the assignment's max_score is then the sum of the points).
-- A grading of such an assignment keeps a copy of each criterion as it was graded (so later
-- edits of the rubric do not rewrite history) with the model's verdict, points and the quoted
-- evidence (grading_criterion; verdict and points NULL when the model gave no valid verdict).
-- A teacher adjusts per criterion: the adjusting review row carries the new total in
-- review.new_score and one review_criterion row per criterion with its points before and
-- after, so the history shows who changed which criterion, when, and why (review.comment).
ALTER TABLE assignment ADD COLUMN rubric_criteria jsonb
    CHECK (rubric_criteria IS NULL OR jsonb_typeof(rubric_criteria) = 'array');

CREATE TABLE grading_criterion (
    grading_id    bigint NOT NULL REFERENCES grading(id) ON DELETE CASCADE,
    position      integer NOT NULL CHECK (position >= 1),
    criterion_id  text NOT NULL CHECK (length(criterion_id) BETWEEN 1 AND 32),
    description   text NOT NULL,
    max_points    numeric(8,2) NOT NULL CHECK (max_points > 0),
    verdict       text CHECK (verdict IN ('met', 'partly', 'not_met')),
    points        numeric(8,2) CHECK (points IS NULL OR (points >= 0 AND points <= max_points)),
    evidence      text NOT NULL DEFAULT '',
    agreement     real CHECK (agreement IS NULL OR (agreement >= 0 AND agreement <= 1)),
    PRIMARY KEY (grading_id, criterion_id),
    UNIQUE (grading_id, position),
    CHECK ((verdict IS NULL) = (points IS NULL))
);

CREATE TABLE review_criterion (
    review_id     bigint NOT NULL REFERENCES review(id) ON DELETE CASCADE,
    criterion_id  text NOT NULL,
    old_points    numeric(8,2),
    new_points    numeric(8,2) NOT NULL CHECK (new_points >= 0),
    PRIMARY KEY (review_id, criterion_id)
);

-- The criteria of a grading in rubric order, each with its current points: the new_points of
-- the latest adjusting review that has a row for it, else the model's points. adjusted is true
-- when a review set points that differ from the model's. '[]' for a grading without criteria.
-- One definition for the review page, the exports and the API.
CREATE FUNCTION sm_grading_criteria(gid bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(jsonb_agg(jsonb_build_object(
        'id', gc.criterion_id, 'description', gc.description, 'max_points', gc.max_points,
        'verdict', gc.verdict, 'points', gc.points, 'evidence', gc.evidence,
        'agreement', gc.agreement, 'current_points', COALESCE(cur.new_points, gc.points),
        'adjusted', cur.new_points IS NOT NULL AND cur.new_points IS DISTINCT FROM gc.points)
        ORDER BY gc.position), '[]'::jsonb)
    FROM grading_criterion gc
    LEFT JOIN LATERAL (SELECT rc.new_points FROM review_criterion rc
        JOIN review rv ON rv.id = rc.review_id
        WHERE rv.grading_id = gc.grading_id AND rc.criterion_id = gc.criterion_id
        ORDER BY rv.created_at DESC, rv.id DESC LIMIT 1) cur ON true
    WHERE gc.grading_id = gid
$$;
