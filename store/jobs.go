package store

import (
	"context"
	"fmt"
	"time"

	"github.com/pigp/pigp"
)

type jobTickRow struct {
	Job       string    `gorm:"primaryKey"`
	Tick      time.Time `gorm:"primaryKey"`
	Node      string
	ClaimedAt time.Time
}

func (jobTickRow) TableName() string { return "job_ticks" }

type jobRunRow struct {
	ID         int64 `gorm:"primaryKey"`
	Job        string
	Node       string
	Tick       time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	OK         bool `gorm:"column:ok"`
	Message    string
	Counts     string
}

func (jobRunRow) TableName() string { return "job_runs" }

// ClaimTick records that node runs job for the tick; it returns false when
// another node already claimed that tick. The primary key makes the claim
// atomic across every node sharing the database.
func (db *DB) ClaimTick(ctx context.Context, job string, tick time.Time, node string) (bool, error) {
	err := db.with(ctx).Create(&jobTickRow{Job: job, Tick: utc(tick), Node: node, ClaimedAt: db.now()}).Error
	if err == nil {
		return true, nil
	}
	if pigp.ErrorCode(conflict(err, "")) == pigp.ECONFLICT {
		return false, nil
	}
	return false, fmt.Errorf("claim tick: %w", err)
}

// PruneTicks deletes tick claims older than before.
func (db *DB) PruneTicks(ctx context.Context, before time.Time) (int64, error) {
	res := db.with(ctx).Where("tick < ?", utc(before)).Delete(&jobTickRow{})
	return res.RowsAffected, res.Error
}

// RecordJobRun stores a job run.
func (db *DB) RecordJobRun(ctx context.Context, r *pigp.JobRun) error {
	row := jobRunRow{Job: r.Job, Node: r.Node, Tick: utc(r.Tick), StartedAt: utc(r.StartedAt), FinishedAt: utc(r.FinishedAt),
		OK: r.OK, Message: r.Message, Counts: r.Counts}
	if err := db.with(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("record job run: %w", err)
	}
	return nil
}

// LastJobRuns returns the latest run of each job.
func (db *DB) LastJobRuns(ctx context.Context) (map[string]*pigp.JobRun, error) {
	var rows []jobRunRow
	sub := db.with(ctx).Model(&jobRunRow{}).Select("MAX(id)").Group("job")
	if err := db.with(ctx).Where("id IN (?)", sub).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("last job runs: %w", err)
	}
	out := map[string]*pigp.JobRun{}
	for _, r := range rows {
		out[r.Job] = &pigp.JobRun{Job: r.Job, Node: r.Node, Tick: r.Tick, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
			OK: r.OK, Message: r.Message, Counts: r.Counts}
	}
	return out, nil
}

// CountJobRuns returns how many runs of job were recorded.
func (db *DB) CountJobRuns(ctx context.Context, job string) (int64, error) {
	var n int64
	err := db.with(ctx).Model(&jobRunRow{}).Where("job = ?", job).Count(&n).Error
	return n, err
}

// ListJobRuns returns the runs of job, oldest first.
func (db *DB) ListJobRuns(ctx context.Context, job string) ([]*pigp.JobRun, error) {
	var rows []jobRunRow
	if err := db.with(ctx).Where("job = ?", job).Order("tick, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list job runs: %w", err)
	}
	out := make([]*pigp.JobRun, len(rows))
	for i, r := range rows {
		out[i] = &pigp.JobRun{Job: r.Job, Node: r.Node, Tick: r.Tick, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
			OK: r.OK, Message: r.Message, Counts: r.Counts}
	}
	return out, nil
}
